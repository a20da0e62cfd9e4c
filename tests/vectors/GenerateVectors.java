import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.SchemaParser;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.util.Utf8;

/**
 * Reference vectors from the Java Avro library, the reference implementation, for the unit tests of
 * pipeline/wire (tests/unit/wire/test_avro_codec.py, test_decode_vectors.py).
 *
 * <p>fingerprints.json: for every schema in the schema folder, its Parsing Canonical Form and CRC-64-AVRO
 * fingerprint as written on the wire by single-object encoding (little-endian); the same for every
 * published version (schemas/history/Name.vN.avsc, then the current one); records encoded by
 * BinaryMessageEncoder.
 *
 * <p>decode_vectors.json: for every published version of every record, valid encodings and corrupt
 * ones (enum and union indexes out of range, negative or too large; bad lengths; truncated bodies;
 * trailing bytes; overlong varints; unknown fingerprints), each with the verdict of the library's
 * single-object decoder (BinaryMessageDecoder, reading into the current version, which resolves older
 * ones) and the record it read. A value holds one record, so bytes left after it make it rejected.
 *
 * <p>Usage: java -cp AVRO_CLASSPATH GenerateVectors.java SCHEMA_DIR OUT_DIR
 */
public class GenerateVectors {
  static final HexFormat HEX = HexFormat.of();
  static final Pattern HISTORY_FILE = Pattern.compile("([A-Za-z_][A-Za-z0-9_]*)\\.v([1-9][0-9]*)\\.avsc");
  static final int VARIANTS = 3; // every optional field set (two ways), and every one null

  public static void main(String[] args) throws Exception {
    File schemaDir = new File(args[0]);
    File outDir = new File(args[1]);
    File[] files = schemaDir.listFiles((dir, name) -> name.endsWith(".avsc"));
    Arrays.sort(files);
    // One parser for all files, so a type named in one file (SuppressedAlert -> DeviceAlert) resolves
    // to its definition in another, in any file order; names are resolved once all files are read.
    SchemaParser parser = new SchemaParser();
    List<SchemaParser.ParseResult> parsed = new ArrayList<>();
    for (File file : files) {
      parsed.add(parser.parse(file));
    }
    Map<String, Schema> resolved = new LinkedHashMap<>();
    for (Schema schema : parser.getParsedNamedSchemas()) {
      resolved.put(schema.getFullName(), schema);
    }
    List<Schema> schemas = new ArrayList<>();
    for (SchemaParser.ParseResult result : parsed) {
      schemas.add(resolved.get(result.mainSchema().getFullName()));
    }
    Map<String, List<Schema>> published = publishedVersions(new File(schemaDir, "history"), schemas);
    String generator = "GenerateVectors.java with org.apache.avro:avro "
        + Schema.class.getPackage().getImplementationVersion();
    ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    Map<String, Object> out = new LinkedHashMap<>();
    out.put("generator", generator);
    Map<String, Object> fingerprints = new LinkedHashMap<>();
    for (Schema schema : schemas) {
      fingerprints.put(schema.getFullName(), fingerprintEntry(schema));
    }
    out.put("fingerprints", fingerprints);
    Map<String, Object> versions = new LinkedHashMap<>();
    for (Map.Entry<String, List<Schema>> entry : published.entrySet()) {
      List<Object> list = new ArrayList<>();
      for (Schema schema : entry.getValue()) {
        list.add(fingerprintEntry(schema));
      }
      versions.put(entry.getKey(), list);
    }
    out.put("published", versions);
    out.put("encoded", List.of(vector(sampleAlert(resolved)), vector(sampleSuppressed(resolved))));
    json.writeValue(new File(outDir, "fingerprints.json"), out);

    List<Object> vectors = new ArrayList<>();
    for (Map.Entry<String, List<Schema>> entry : published.entrySet()) {
      List<Schema> all = entry.getValue();
      Schema current = all.get(all.size() - 1);
      BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), current);
      for (Schema old : all.subList(0, all.size() - 1)) {
        decoder.addSchema(old);
      }
      for (int version = 1; version <= all.size(); version++) {
        Schema writer = all.get(version - 1);
        for (int variant = 0; variant < VARIANTS; variant++) {
          GenericRecord datum = (GenericRecord) sample(writer, variant, new int[] {0});
          for (Map.Entry<String, byte[]> testCase : cases(writer, datum, variant).entrySet()) {
            vectors.add(judge(decoder, entry.getKey(), version, variant, testCase.getKey(), testCase.getValue()));
          }
        }
      }
    }
    // One vector a line: compact, and a change of schema shows as a readable diff.
    ObjectMapper line = new ObjectMapper();
    StringBuilder text = new StringBuilder("{\"generator\": " + line.writeValueAsString(generator) + ",\n \"vectors\": [\n");
    for (int i = 0; i < vectors.size(); i++) {
      text.append("  ").append(line.writeValueAsString(vectors.get(i))).append(i + 1 < vectors.size() ? ",\n" : "\n");
    }
    Files.writeString(new File(outDir, "decode_vectors.json").toPath(), text.append("]}\n"));
  }

  /** Every published version of every record, oldest first: the history folder's, then the current one. */
  static Map<String, List<Schema>> publishedVersions(File historyDir, List<Schema> current) throws Exception {
    Map<String, TreeMap<Integer, Schema>> history = new TreeMap<>();
    File[] files = historyDir.listFiles((dir, name) -> name.endsWith(".avsc"));
    for (File file : files == null ? new File[0] : files) {
      Matcher match = HISTORY_FILE.matcher(file.getName());
      if (!match.matches()) {
        throw new IllegalArgumentException(file + ": expected Name.vN.avsc");
      }
      Schema schema = new SchemaParser().parse(file).mainSchema(); // self-contained: a parser of its own
      history.computeIfAbsent(schema.getFullName(), name -> new TreeMap<>())
          .put(Integer.parseInt(match.group(2)), schema);
    }
    Map<String, List<Schema>> published = new TreeMap<>();
    for (Schema schema : current) {
      List<Schema> versions = new ArrayList<>(history.getOrDefault(schema.getFullName(), new TreeMap<>()).values());
      versions.add(schema);
      published.put(schema.getFullName(), versions);
    }
    return published;
  }

  static Map<String, Object> fingerprintEntry(Schema schema) {
    Map<String, Object> entry = new LinkedHashMap<>();
    entry.put("canonical_form", SchemaNormalization.toParsingForm(schema));
    entry.put("fingerprint_hex", littleEndianHex(SchemaNormalization.parsingFingerprint64(schema)));
    return entry;
  }

  // --- the verdict of the Java library -------------------------------------------------------------

  static Map<String, Object> judge(
      BinaryMessageDecoder<GenericRecord> decoder, String record, int version, int variant, String label,
      byte[] value) {
    Map<String, Object> entry = new LinkedHashMap<>();
    entry.put("record", record);
    entry.put("writer_version", version);
    entry.put("variant", variant);
    entry.put("case", label);
    entry.put("hex", HEX.formatHex(value));
    ByteArrayInputStream stream = new ByteArrayInputStream(value);
    try {
      GenericRecord read = decoder.decode(stream, null);
      if (stream.available() > 0) {
        entry.put("java", "reject");
        entry.put("error", stream.available() + " bytes left over after the record");
      } else {
        boolean[] invalidUtf8 = {false};
        entry.put("java", "accept");
        entry.put("datum", plain(read, invalidUtf8));
        if (invalidUtf8[0]) {
          entry.put("java_replaced_invalid_utf8", true);
        }
      }
    } catch (Exception | OutOfMemoryError e) {
      entry.put("java", "reject");
      String message = String.valueOf(e.getMessage());
      entry.put("error", e.getClass().getSimpleName() + ": " + message.substring(0, Math.min(160, message.length())));
    }
    return entry;
  }

  // --- corrupt encodings, made by changing one token of a valid one ------------------------------------

  /** A varint, an index or a length in the encoded body: where it is and what it says. */
  record Token(String kind, String path, int start, int end, long value, int choices) {}

  static Map<String, byte[]> cases(Schema schema, GenericRecord datum, int variant) throws Exception {
    byte[] reference = messageBytes(datum);
    byte[] header = Arrays.copyOfRange(reference, 0, 10);
    List<Token> tokens = new ArrayList<>();
    ByteArrayOutputStream buffer = new ByteArrayOutputStream();
    BinaryEncoder encoder = EncoderFactory.get().directBinaryEncoder(buffer, null);
    write(schema, datum, "", encoder, buffer, tokens);
    encoder.flush();
    byte[] body = buffer.toByteArray();
    if (!Arrays.equals(body, Arrays.copyOfRange(reference, 10, reference.length))) {
      throw new IllegalStateException("the token writer disagrees with BinaryMessageEncoder for " + schema.getFullName());
    }
    Map<String, byte[]> cases = new LinkedHashMap<>();
    cases.put("valid", concat(header, body));
    for (Token token : tokens) {
      String at = " at " + token.path;
      List<Long> values = new ArrayList<>();
      switch (token.kind) {
        case "union", "enum" -> {
          long n = token.choices;
          values.addAll(List.of(-1L, -2L, -n, -n - 1, n, n + 1, 64L, (long) Integer.MIN_VALUE));
        }
        case "length", "count" -> {
          long n = token.value;
          values.addAll(List.of(-1L, -n - 1, n + 1, n + 64, (long) Integer.MAX_VALUE, 1L << 62));
          if (n > 0) {
            values.addAll(List.of(-n, n - 1));
          }
        }
        default -> { }
      }
      for (long value : values) {
        if (value != token.value) {
          cases.put(token.kind + " " + value + at, concat(header, splice(body, token, zigzag(value))));
        }
      }
      int longest = List.of("long", "length", "count").contains(token.kind) ? 10 : 5;
      int length = token.end - token.start;
      if (length < longest) {
        cases.put(token.kind + " in " + longest + " bytes" + at,
            concat(header, splice(body, token, overlong(token.value, longest))));
      }
      cases.put(token.kind + " in " + (longest + 1) + " bytes" + at,
          concat(header, splice(body, token, overlong(token.value, longest + 1))));
      if (token.kind.equals("int") && variant == 0) {
        cases.put("int beyond 32 bits" + at, concat(header, splice(body, token, zigzag(1L << 31))));
      }
    }
    TreeMap<Integer, String> cuts = new TreeMap<>();
    cuts.put(0, "");
    cuts.put(body.length - 1, ""); // the same as 0 for a one-byte body (an empty array)
    for (Token token : variant == 0 ? tokens : List.<Token>of()) {
      cuts.put(token.start, token.path); // before a token, inside it, after it (inside the content it counts)
      cuts.put(token.start + 1, token.path);
      cuts.put(token.end + (int) Math.min(Math.max(token.value, 0), 2) / 2, token.path);
    }
    for (Map.Entry<Integer, String> cut : cuts.entrySet()) {
      if (cut.getKey() < body.length) {
        cases.put("truncated to " + cut.getKey() + " bytes", concat(header, Arrays.copyOf(body, cut.getKey())));
      }
    }
    cases.put("trailing 00", concat(header, body, new byte[] {0}));
    cases.put("trailing 02 41", concat(header, body, new byte[] {2, 0x41}));
    cases.put("trailing ff ff ff", concat(header, body, new byte[] {-1, -1, -1}));
    if (variant == 0) {
      byte[] otherFingerprint = header.clone();
      otherFingerprint[9] ^= 0x01;
      cases.put("unknown fingerprint", concat(otherFingerprint, body));
      cases.put("header only", header);
      cases.put("header cut short", Arrays.copyOf(header, 9));
    }
    return cases;
  }

  /** Writes a datum as the library does, noting where every index, length and number is. */
  static void write(Schema schema, Object value, String path, BinaryEncoder encoder, ByteArrayOutputStream out,
      List<Token> tokens) throws Exception {
    int start = out.size();
    switch (schema.getType()) {
      case RECORD -> {
        GenericRecord record = (GenericRecord) value;
        for (Schema.Field field : schema.getFields()) {
          String inner = path.isEmpty() ? field.name() : path + "." + field.name();
          write(field.schema(), record.get(field.name()), inner, encoder, out, tokens);
        }
      }
      case UNION -> {
        int index = GenericData.get().resolveUnion(schema, value);
        encoder.writeIndex(index);
        tokens.add(new Token("union", path, start, out.size(), index, schema.getTypes().size()));
        write(schema.getTypes().get(index), value, path, encoder, out, tokens);
      }
      case ENUM -> {
        int index = schema.getEnumOrdinal(value.toString());
        encoder.writeEnum(index);
        tokens.add(new Token("enum", path, start, out.size(), index, schema.getEnumSymbols().size()));
      }
      case STRING, BYTES -> {
        byte[] bytes = value instanceof ByteBuffer buffer
            ? Arrays.copyOfRange(buffer.array(), buffer.position(), buffer.limit())
            : value.toString().getBytes(StandardCharsets.UTF_8);
        encoder.writeLong(bytes.length);
        tokens.add(new Token("length", path, start, out.size(), bytes.length, 0));
        encoder.writeFixed(bytes);
      }
      case LONG -> {
        encoder.writeLong((Long) value);
        tokens.add(new Token("long", path, start, out.size(), (Long) value, 0));
      }
      case INT -> {
        encoder.writeInt((Integer) value);
        tokens.add(new Token("int", path, start, out.size(), (Integer) value, 0));
      }
      case ARRAY -> {
        List<?> items = (List<?>) value;
        if (!items.isEmpty()) {
          encoder.writeLong(items.size());
          tokens.add(new Token("count", path, start, out.size(), items.size(), 0));
          for (int i = 0; i < items.size(); i++) {
            write(schema.getElementType(), items.get(i), path + "[" + i + "]", encoder, out, tokens);
          }
        }
        int end = out.size();
        encoder.writeLong(0);
        tokens.add(new Token("count", path, end, out.size(), 0, 0));
      }
      case NULL -> { }
      default -> throw new UnsupportedOperationException("no schema of ours has a " + schema.getType() + " yet");
    }
  }

  static byte[] splice(byte[] body, Token token, byte[] replacement) {
    return concat(Arrays.copyOfRange(body, 0, token.start), replacement,
        Arrays.copyOfRange(body, token.end, body.length));
  }

  static byte[] zigzag(long value) {
    long n = (value << 1) ^ (value >> 63);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    while ((n & ~0x7FL) != 0) {
      out.write((int) ((n & 0x7F) | 0x80));
      n >>>= 7;
    }
    out.write((int) n);
    return out.toByteArray();
  }

  /** The varint of `value` written in `size` bytes: continuation bits set, then zero groups. */
  static byte[] overlong(long value, int size) {
    byte[] canonical = zigzag(value);
    byte[] out = new byte[Math.max(size, canonical.length)];
    System.arraycopy(canonical, 0, out, 0, canonical.length);
    for (int i = 0; i < out.length - 1; i++) {
      out[i] |= (byte) 0x80;
    }
    return out;
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      out.writeBytes(part);
    }
    return out.toByteArray();
  }

  // --- sample records ----------------------------------------------------------------------------------

  /** A datum of the schema. Variant 0: every optional field set, strings that are device IDs, enums on their
   *  last symbol; 1: set, with long strings and large numbers; 2: every optional field null, empty strings. */
  static Object sample(Schema schema, int variant, int[] counter) {
    int n = counter[0]++;
    return switch (schema.getType()) {
      case RECORD -> {
        GenericRecord record = new GenericData.Record(schema);
        for (Schema.Field field : schema.getFields()) {
          record.put(field.name(), sample(field.schema(), variant, counter));
        }
        yield record;
      }
      case UNION -> {
        Schema branch = schema.getTypes().stream()
            .filter(type -> (type.getType() == Schema.Type.NULL) == (variant == 2))
            .findFirst().orElse(schema.getTypes().get(0));
        yield sample(branch, variant, counter);
      }
      case ENUM -> {
        List<String> symbols = schema.getEnumSymbols();
        int index = variant == 0 ? symbols.size() - 1 : variant == 1 ? 0 : symbols.size() / 2;
        yield new GenericData.EnumSymbol(schema, symbols.get(index));
      }
      case STRING -> variant == 1 ? "Aé-" + "x".repeat(60) + n : variant == 2 ? "" : String.format("00-DB-12-34-56-78-90-%02X", n & 0xFF);
      case BYTES -> ByteBuffer.wrap(variant == 1 ? new byte[64] : new byte[] {0x00, 0x01, (byte) 0xC3, (byte) n});
      case LONG -> variant == 1 ? -(1L << 62) - n : 1735689600000L + n;
      case INT -> variant == 1 ? Integer.MIN_VALUE + n : n;
      case ARRAY -> {
        GenericData.Array<Object> items = new GenericData.Array<>(2, schema);
        for (int i = 0; i < 2 - variant; i++) {
          items.add(sample(schema.getElementType(), variant, counter));
        }
        yield items;
      }
      case NULL -> null;
      default -> throw new UnsupportedOperationException("no schema of ours has a " + schema.getType() + " yet");
    };
  }

  static GenericRecord sampleAlert(Map<String, Schema> resolved) {
    GenericRecord alert = new GenericData.Record(resolved.get("poafilter.DeviceAlert"));
    alert.put("alert_id", "ALERT-0001");
    alert.put("alert_code", "AD1");
    alert.put("device_id", "00-DB-12-34-56-78-90-A1");
    alert.put("mpxn", "1900001234567");
    alert.put("raised_at", 1735689540000L);
    alert.put("received_at", 1735689601234L);
    alert.put("payload", ByteBuffer.wrap(new byte[] {0x00, 0x01, (byte) 0xC3, (byte) 0xFF}));
    return alert;
  }

  static GenericRecord sampleSuppressed(Map<String, Schema> resolved) {
    GenericRecord suppressed = new GenericData.Record(resolved.get("poafilter.SuppressedAlert"));
    suppressed.put("alert", sampleAlert(resolved));
    suppressed.put("esme_id", "00-DB-12-34-56-78-90-A0");
    suppressed.put("activation_request_id", "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1001");
    suppressed.put("window_start", 1735689600000L);
    suppressed.put("window_end", 1735691400000L);
    suppressed.put("reason", "AD1 within firmware activation window of tracked ESME");
    suppressed.put("decided_at", 1735689602000L);
    suppressed.put("filter_version", "0.1.0");
    return suppressed;
  }

  static Map<String, Object> vector(GenericRecord record) throws Exception {
    Map<String, Object> entry = new LinkedHashMap<>();
    entry.put("record", record.getSchema().getFullName());
    entry.put("datum", plain(record, new boolean[1]));
    entry.put("hex", HEX.formatHex(messageBytes(record)));
    return entry;
  }

  /** The record in single-object encoding, by BinaryMessageEncoder. */
  static byte[] messageBytes(GenericRecord record) throws Exception {
    ByteBuffer buffer = new BinaryMessageEncoder<GenericRecord>(GenericData.get(), record.getSchema())
        .encode(record);
    byte[] bytes = new byte[buffer.remaining()];
    buffer.get(bytes);
    return bytes;
  }

  /** The datum as JSON: bytes as {"hex": "..."} so the Python test can rebuild it exactly. A string the
   *  library read from invalid UTF-8 (it substitutes U+FFFD) sets invalidUtf8[0]. */
  static Object plain(Object value, boolean[] invalidUtf8) {
    if (value instanceof GenericRecord record) {
      Map<String, Object> fields = new LinkedHashMap<>();
      for (Schema.Field field : record.getSchema().getFields()) {
        fields.put(field.name(), plain(record.get(field.name()), invalidUtf8));
      }
      return fields;
    }
    if (value instanceof ByteBuffer buffer) {
      ByteBuffer copy = buffer.duplicate();
      byte[] bytes = new byte[copy.remaining()];
      copy.get(bytes);
      return Map.of("hex", HEX.formatHex(bytes));
    }
    if (value instanceof Utf8 utf8) {
      try {
        CharBuffer text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(utf8.getBytes(), 0, utf8.getByteLength()));
        return text.toString();
      } catch (CharacterCodingException e) {
        invalidUtf8[0] = true;
        return utf8.toString();
      }
    }
    if (value instanceof GenericEnumSymbol<?> symbol) {
      return symbol.toString();
    }
    if (value instanceof List<?> items) {
      List<Object> plainItems = new ArrayList<>();
      for (Object item : items) {
        plainItems.add(plain(item, invalidUtf8));
      }
      return plainItems;
    }
    return value;
  }

  static String littleEndianHex(long fingerprint) {
    return HEX.formatHex(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fingerprint).array());
  }
}
