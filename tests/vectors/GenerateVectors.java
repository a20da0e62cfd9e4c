import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaParser;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * Reference vectors from the Java Avro library for tests/unit/test_avro_codec.py: for every schema in
 * the schema folder, its Parsing Canonical Form and CRC-64-AVRO fingerprint as written on the wire by
 * single-object encoding (little-endian), plus records encoded by BinaryMessageEncoder.
 * Usage: java -cp AVRO_CLASSPATH GenerateVectors.java SCHEMA_DIR > fingerprints.json
 */
public class GenerateVectors {
  static final HexFormat HEX = HexFormat.of();

  public static void main(String[] args) throws Exception {
    File[] files = new File(args[0]).listFiles((dir, name) -> name.endsWith(".avsc"));
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

    Map<String, Object> out = new LinkedHashMap<>();
    out.put("generator", "GenerateVectors.java with org.apache.avro:avro "
        + Schema.class.getPackage().getImplementationVersion());
    Map<String, Object> fingerprints = new LinkedHashMap<>();
    for (Schema schema : schemas) {
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put("canonical_form", SchemaNormalization.toParsingForm(schema));
      entry.put("fingerprint_hex", littleEndianHex(SchemaNormalization.parsingFingerprint64(schema)));
      fingerprints.put(schema.getFullName(), entry);
    }
    out.put("fingerprints", fingerprints);

    GenericRecord alert = new GenericData.Record(resolved.get("poafilter.DeviceAlert"));
    alert.put("alert_id", "ALERT-0001");
    alert.put("alert_code", "AD1");
    alert.put("device_id", "00-DB-12-34-56-78-90-A1");
    alert.put("mpxn", "1900001234567");
    alert.put("raised_at", 1735689540000L);
    alert.put("received_at", 1735689601234L);
    alert.put("payload", ByteBuffer.wrap(new byte[] {0x00, 0x01, (byte) 0xC3, (byte) 0xFF}));

    GenericRecord suppressed = new GenericData.Record(resolved.get("poafilter.SuppressedAlert"));
    suppressed.put("alert", alert);
    suppressed.put("esme_id", "00-DB-12-34-56-78-90-A0");
    suppressed.put("activation_request_id", "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1001");
    suppressed.put("window_start", 1735689600000L);
    suppressed.put("window_end", 1735691400000L);
    suppressed.put("reason", "AD1 within firmware activation window of tracked ESME");
    suppressed.put("decided_at", 1735689602000L);
    suppressed.put("filter_version", "0.1.0");

    List<Object> encoded = new ArrayList<>();
    encoded.add(vector(alert));
    encoded.add(vector(suppressed));
    out.put("encoded", encoded);

    System.out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(out));
  }

  static Map<String, Object> vector(GenericRecord record) throws Exception {
    ByteBuffer buffer = new BinaryMessageEncoder<GenericRecord>(GenericData.get(), record.getSchema())
        .encode(record);
    byte[] bytes = new byte[buffer.remaining()];
    buffer.get(bytes);
    Map<String, Object> entry = new LinkedHashMap<>();
    entry.put("record", record.getSchema().getFullName());
    entry.put("datum", plain(record));
    entry.put("hex", HEX.formatHex(bytes));
    return entry;
  }

  /** The datum as JSON: bytes as {"hex": "..."} so the Python test can rebuild it exactly. */
  static Object plain(Object value) {
    if (value instanceof GenericRecord record) {
      Map<String, Object> fields = new LinkedHashMap<>();
      for (Schema.Field field : record.getSchema().getFields()) {
        fields.put(field.name(), plain(record.get(field.name())));
      }
      return fields;
    }
    if (value instanceof ByteBuffer buffer) {
      ByteBuffer copy = buffer.duplicate();
      byte[] bytes = new byte[copy.remaining()];
      copy.get(bytes);
      return Map.of("hex", HEX.formatHex(bytes));
    }
    return value;
  }

  static String littleEndianHex(long fingerprint) {
    return HEX.formatHex(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fingerprint).array());
  }
}
