"""Avro for every poa-filter topic (contract section 4): single-object encoding, or Confluent framing.

All that depends only on a schema (its self-contained form, Parsing Canonical Form, fingerprint,
parsed form, validator, scan) is worked out once when the codec is made, because encode and decode sit
on the hot path: each is then a dict lookup, a header check, the scan and one fastavro call.

Schema evolution (contract 3): `schemas/<Name>.avsc` is the current version of each record, and
`schemas/history/<Name>.v<N>.avsc` every version published before it, self-contained, as written to a
registry. Bytes written with any of them are read and resolved to the current version by Avro's
resolution rules; an unknown fingerprint is bad input.

Decoded records are plain Python data: timestamps stay int epoch milliseconds (the schemas are
parsed with their logicalType annotations removed; the binary is the same long), enums are their
symbol strings, bytes are bytes.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint as _fingerprint_hex
from fastavro.schema import to_parsing_canonical_form

from pipeline.core.bad_input import BadInput
from pipeline.wire.avro_scan import CorruptBody, ScanFunction, compile_scan
from pipeline.wire.schema_registry import NoSuchAvroSchema, RegistryAuthFileError, SchemaRegistryClient

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = 0
HISTORY_DIR = "history"  # under the schema folder: every superseded version, <Name>.v<N>.avsc
_SINGLE_OBJECT_HEADER_LEN = 10  # marker + 8-byte fingerprint
_CONFLUENT_HEADER_LEN = 5  # magic + 4-byte schema ID
_HISTORY_FILE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc")

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_TYPES = frozenset({"record", "error", "enum", "fixed"})

Schema = Any  # an Avro schema as parsed JSON: a type name, a list (union) or a dict
Check = Callable[[object], str | None]  # None when the value fits, else "<.path>: what is wrong"


@dataclass(frozen=True, slots=True)
class _Record:
    """The current version of one record type of ours, with everything encode and decode need precomputed."""

    name: str
    version: int  # 1 + the number of versions in the history folder
    schema_text: str  # self-contained, with docs and logical types: what is registered in a registry
    canonical_form: str
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as on the wire
    header: bytes  # single-object header: marker + fingerprint
    plain: Schema  # parsed by fastavro, logical types removed
    check: Check
    scan: ScanFunction  # the verdict on a body, strings' UTF-8 aside (fastavro checks it)
    explain: ScanFunction  # the same with UTF-8, to name the field of a string fastavro could not read


@dataclass(frozen=True, slots=True)
class _Writer:
    """A schema that bytes were written with: a published version of ours, or a registry's, resolved once."""

    name: str  # full name of the top-level type
    plain: Schema  # parsed, logical types removed
    scan: ScanFunction
    explain: ScanFunction
    record: _Record | None  # our record of that name, when this is one of its published versions
    current: bool  # it is that record's current version: read without resolution
    version: int | None  # which version of ours it is
    label: str  # for messages: "version 1", "schema ID 7"


def _default_schema_dir() -> Path:
    """`pipeline/schemas` if installed as package data, else the source tree's `schemas/`."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "schemas", package.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no schemas folder found beside or above {package}")


class AvroCodec:
    """Encodes and decodes poa-filter's records; every problem with input bytes is a BadInput."""

    def __init__(self, schema_dir: Path | None = None, registry: SchemaRegistryClient | None = None) -> None:
        self._registry = registry
        folder = schema_dir or _default_schema_dir()
        history = _history_files(folder / HISTORY_DIR)
        records = _load_records(folder, history)
        self._published = _published_versions(history, records)
        short_names = [record.name.rpartition(".")[2] for record in records]
        self._entries = {record.name: record for record in records}
        self._entries.update(
            (short, record) for short, record in zip(short_names, records, strict=True) if short_names.count(short) == 1
        )
        self._confluent_headers: dict[tuple[str, str], bytes] = {}
        self._writers: dict[int, _Writer] = {}

    @property
    def record_names(self) -> tuple[str, ...]:
        """Full names of the records this codec knows."""
        return tuple(sorted({record.name for record in self._entries.values()}))

    def fingerprint(self, record_name: str) -> bytes:
        """CRC-64-AVRO of the record's Parsing Canonical Form, 8 bytes little-endian as on the wire."""
        return self._entry(record_name).fingerprint

    def published_fingerprints(self, record_name: str) -> tuple[bytes, ...]:
        """The fingerprint of every version of the record published so far, version 1 first, current last."""
        record = self._entry(record_name)
        versions = {
            writer.version: fingerprint for fingerprint, writer in self._published.items() if writer.record is record
        }
        return tuple(versions[version] for version in range(1, record.version + 1))

    def canonical_form(self, record_name: str) -> str:
        """Parsing Canonical Form of the full, self-contained schema (named types in full at first use)."""
        return self._entry(record_name).canonical_form

    def single_object_header(self, record_name: str) -> bytes:
        """Marker C3 01 and the 8-byte fingerprint: what a single-object encoded record starts with."""
        return self._entry(record_name).header

    def header(self, record_name: str, topic: str | None = None) -> bytes:
        """What `encode` writes before the body: the single-object header, or the Confluent one under a
        registry (subject `<topic>-value`), which may ask the registry: RegistryUnavailable when it cannot."""
        record = self._entry(record_name)
        return record.header if self._registry is None else self._confluent_header(record, topic)

    def encode(self, record_name: str, datum: dict[str, Any], topic: str | None = None) -> bytes:
        """The current version in single-object encoding, or Confluent framing under subject `<topic>-value`
        when a registry is set.

        A datum that does not fit the schema is a BadInput naming the field, so bulk loaders can say which.
        A registry that cannot register the schema is RegistryUnavailable (wait and retry), not BadInput.
        """
        record = self._entry(record_name)
        problem = record.check(datum)
        if problem is not None:
            raise BadInput(f"{record.name}{problem}")
        buffer = BytesIO()
        buffer.write(self.header(record_name, topic))
        try:
            schemaless_writer(buffer, record.plain, datum)
        except UnicodeEncodeError as exc:
            raise BadInput(f"{record.name}: a string cannot be written as UTF-8 ({exc.reason})") from exc
        return buffer.getvalue()

    def decode(self, record_name: str, data: bytes | None) -> dict[str, Any]:
        """The record in `data`, resolved to the current version, as plain Python data.

        BadInput (never another error) for any bad bytes, an unknown fingerprint or schema ID included.
        A registry that cannot answer for a schema ID is RegistryUnavailable: the input may be fine.
        """
        record = self._entry(record_name)
        if not data:
            kind = "null" if data is None else "empty"
            raise BadInput(f"{kind} value where a {record.name} record is due")
        if data[:2] == SINGLE_OBJECT_MARKER:
            found = data[2:_SINGLE_OBJECT_HEADER_LEN]
            writer = self._published.get(found)
            if writer is not None and writer.record is record:
                return _read(record, writer, data, _SINGLE_OBJECT_HEADER_LEN)
            raise self._wrong_fingerprint(record, data, writer)
        if data[0] == CONFLUENT_MAGIC:
            return self._decode_confluent(record, data)
        raise BadInput(self._not_avro(record, data))

    def _entry(self, record_name: str) -> _Record:
        try:
            return self._entries[record_name]
        except KeyError:
            raise ValueError(f"no schema for record {record_name!r}; known: {', '.join(self.record_names)}") from None

    def _wrong_fingerprint(self, record: _Record, data: bytes, other: _Writer | None) -> BadInput:
        """Why a value with the single-object marker is not this record: too short, another type, unknown."""
        if len(data) < _SINGLE_OBJECT_HEADER_LEN:
            return BadInput(
                f"truncated value: {len(data)} bytes, too short for the Avro single-object header "
                f"(C3 01 and an 8-byte schema fingerprint) of a {record.name}"
            )
        if other is not None:
            return BadInput(f"got a {other.name} record where a {record.name} is due")
        known = ", ".join(fingerprint.hex() for fingerprint in self.published_fingerprints(record.name))
        return BadInput(
            f"unknown writer schema fingerprint {data[2:_SINGLE_OBJECT_HEADER_LEN].hex()} (CRC-64-AVRO, bytes "
            f"2-9 of the value): not one of the schemas poa-filter knows; a {record.name} is due, whose "
            f"published versions have fingerprints {known} (current {record.fingerprint.hex()}). "
            "Was it written with an unpublished schema?"
        )

    def _not_avro(self, record: _Record, data: bytes) -> str:
        start = data[:8].hex(" ")
        markers = "the Avro single-object marker C3 01"
        if self._registry is not None:
            markers += " or the Confluent schema-registry magic byte 00"
        hint = "; it looks like JSON text" if data.lstrip()[:1] in (b"{", b"[") else ""
        return f"value does not start with {markers} (it starts {start}{hint}): it is not a {record.name} record"

    def _decode_confluent(self, record: _Record, data: bytes) -> dict[str, Any]:
        if self._registry is None:
            raise BadInput(
                "value starts with byte 00, the Confluent schema-registry framing, but no schema registry "
                f"is configured, so it cannot be read as a {record.name}: configure the registry URL, or "
                "have the producer write Avro single-object encoding (C3 01)"
            )
        if len(data) < _CONFLUENT_HEADER_LEN:
            raise BadInput(
                f"truncated value: {len(data)} bytes, too short for the Confluent framing header "
                f"(00 and a 4-byte schema ID) of a {record.name}"
            )
        schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER_LEN], "big")
        writer = self._writers.get(schema_id) or self._load_writer(schema_id)
        if writer.name != record.name:
            raise BadInput(f"got a {writer.name} record (schema ID {schema_id}) where a {record.name} is due")
        return _read(record, writer, data, _CONFLUENT_HEADER_LEN)

    def _load_writer(self, schema_id: int) -> _Writer:
        """Fetch a schema ID's schema: one of our published versions (by fingerprint), or any other."""
        assert self._registry is not None
        try:
            text = self._registry.get_schema(schema_id)
        except NoSuchAvroSchema as exc:
            raise BadInput(
                f"the Confluent header names schema ID {schema_id}, which the registry does not have: {exc}"
            ) from exc
        label = f"schema ID {schema_id}"
        try:
            schema = json.loads(text)
            ours = self._published.get(_fingerprint(to_parsing_canonical_form(schema)))
            if ours is not None:
                writer = replace(ours, label=label)
            else:
                full = _self_contained(schema, None, {}, set())
                scan, explain = compile_scan(full, utf8=False), compile_scan(full)
                writer = _Writer(_type_name(full, None), _parse(full), scan, explain, None, False, None, label)
        except Exception as exc:  # fastavro raises many types for a bad schema; the value named it
            raise BadInput(
                f"schema ID {schema_id} from the registry is not an Avro schema poa-filter can read: {exc}"
            ) from exc
        self._writers[schema_id] = writer
        return writer

    def _confluent_header(self, record: _Record, topic: str | None) -> bytes:
        if topic is None:
            raise ValueError(f"encoding a {record.name} for a schema registry needs the topic (subject <topic>-value)")
        key = (topic, record.name)
        header = self._confluent_headers.get(key)
        if header is None:
            assert self._registry is not None
            schema_id = self._registry.register(f"{topic}-value", record.schema_text)
            header = bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")
            self._confluent_headers[key] = header
            self._writers.setdefault(
                schema_id, replace(self._published[record.fingerprint], label=f"schema ID {schema_id}")
            )
        return header


def _read(record: _Record, writer: _Writer, data: bytes, offset: int) -> dict[str, Any]:
    """The body after the header, resolved to the record's current version; any fault in it is BadInput.

    The scan gives the verdict on the bytes as the Java library would (fastavro alone reads a negative
    enum or union index from the end of a list); fastavro then reads the values.
    """
    try:
        end = writer.scan(data, offset)
    except CorruptBody as exc:
        raise BadInput(f"corrupt {record.name} record{_via(writer)}: {exc}") from None
    if end != len(data):
        raise BadInput(
            f"corrupt {record.name} record{_via(writer)}: {len(data) - end} bytes left over after "
            f"the record ends at byte {end} of {len(data)}"
        )
    buffer = BytesIO(data)
    buffer.seek(offset)
    try:
        return cast(dict[str, Any], schemaless_reader(buffer, writer.plain, None if writer.current else record.plain))
    except SchemaResolutionError as exc:
        raise BadInput(f"the record{_via(writer)} cannot be read as a {record.name}: {exc}") from exc
    except Exception as exc:  # a string that is not UTF-8 (the scan passed), but bad bytes must never crash
        try:
            writer.explain(data, offset)
        except CorruptBody as corrupt:
            raise BadInput(f"corrupt {record.name} record{_via(writer)}: {corrupt}") from exc
        raise BadInput(f"corrupt {record.name} record{_via(writer)}: {type(exc).__name__}: {exc}") from exc


def _via(writer: _Writer) -> str:
    """Which writer schema, for messages about a record read by resolution."""
    return "" if writer.current else f" (writer {writer.label})"


def _fingerprint(canonical_form: str) -> bytes:
    # fastavro gives the CRC-64-AVRO as hex of the little-endian bytes: the wire order (checked against Java).
    return bytes.fromhex(_fingerprint_hex(canonical_form, "CRC-64-AVRO"))


def _parse(full: Schema) -> Schema:
    return parse_schema(_without_logical_types(full))


def _read_schema_file(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        raise ValueError(f"{path}: the top-level type must be a record")
    return schema


def _load_records(schema_dir: Path, history: dict[str, dict[int, Path]]) -> list[_Record]:
    """Every `.avsc` in the folder as a _Record; names may refer to types defined in the other files."""
    top_level: list[tuple[Path, dict[str, Any]]] = []
    definitions: dict[str, dict[str, Any]] = {}
    for path in sorted(schema_dir.glob("*.avsc")):
        schema = _read_schema_file(path)
        _collect_definitions(schema, None, definitions, path)
        top_level.append((path, schema))
    if not top_level:
        raise ValueError(f"no .avsc schemas in {schema_dir}")
    return [
        _make_record(path, schema, definitions, 1 + len(history.get(schema["name"].rpartition(".")[2], ())))
        for path, schema in top_level
    ]


def _make_record(path: Path, schema: dict[str, Any], definitions: dict[str, dict[str, Any]], version: int) -> _Record:
    try:
        full = _self_contained(schema, None, definitions, set())
        plain = _parse(full)
    except Exception as exc:  # fastavro's parse errors come in many types; say which file
        raise ValueError(f"{path}: not a usable Avro schema: {exc}") from exc
    canonical = to_parsing_canonical_form(full)
    fingerprint = _fingerprint(canonical)
    return _Record(
        name=full["name"],
        version=version,
        schema_text=json.dumps(full),
        canonical_form=canonical,
        fingerprint=fingerprint,
        header=SINGLE_OBJECT_MARKER + fingerprint,
        plain=plain,
        check=_compile_check(full, {}),
        scan=compile_scan(full, utf8=False),
        explain=compile_scan(full),
    )


def _history_files(history_dir: Path) -> dict[str, dict[int, Path]]:
    """The superseded versions' files by short record name and version; versions run 1, 2, ... with no gap."""
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(history_dir.glob("*.avsc")):
        match = _HISTORY_FILE.fullmatch(path.name)
        if match is None:
            raise ValueError(f"{path}: a published schema's file is named <Name>.v<N>.avsc")
        found.setdefault(match["name"], {})[int(match["version"])] = path
    for name, versions in found.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            raise ValueError(f"{history_dir}: versions of {name} must run 1, 2, ... without a gap: {sorted(versions)}")
    return found


def _published_versions(history: dict[str, dict[int, Path]], records: list[_Record]) -> dict[bytes, _Writer]:
    """Every published version of every record by fingerprint: the current ones and the history's."""
    published = {
        record.fingerprint: _Writer(
            record.name,
            record.plain,
            record.scan,
            record.explain,
            record,
            True,
            record.version,
            f"version {record.version}",
        )
        for record in records
    }
    by_short_name = {record.name.rpartition(".")[2]: record for record in records}
    for short_name, versions in history.items():
        record = by_short_name.get(short_name)
        for version, path in versions.items():
            schema = _read_schema_file(path)
            try:
                full = _self_contained(schema, None, {}, set())  # self-contained: no other file's types
                plain = _parse(full)
            except Exception as exc:  # fastavro's parse errors come in many types; say which file
                raise ValueError(f"{path}: not a usable, self-contained Avro schema: {exc}") from exc
            if record is None or full["name"] != record.name:
                raise ValueError(f"{path}: {full['name']} is not a version of a record in {path.parent.parent}")
            fingerprint = _fingerprint(to_parsing_canonical_form(full))
            same = published.get(fingerprint)
            if same is not None:
                raise ValueError(f"{path}: the same schema as {same.name} {same.label}")
            published[fingerprint] = _Writer(
                record.name,
                plain,
                compile_scan(full, utf8=False),
                compile_scan(full),
                record,
                False,
                version,
                f"version {version}",
            )
    return published


# --- names and the self-contained schema --------------------------------------------------------


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _type_name(schema: Schema, namespace: str | None) -> str:
    """Full name of a named type, else what kind of value it is (for messages)."""
    if isinstance(schema, dict) and schema.get("type") in _NAMED_TYPES:
        return _full_name(schema["name"], schema.get("namespace", namespace))
    if isinstance(schema, list):
        return "union"
    return str(schema.get("type") if isinstance(schema, dict) else schema)


def _collect_definitions(schema: Schema, namespace: str | None, found: dict[str, dict[str, Any]], path: Path) -> None:
    """Every named type defined in one file, by full name, so other files can refer to it."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_definitions(branch, namespace, found, path)
    elif isinstance(schema, dict):
        kind = schema["type"]
        if kind in _NAMED_TYPES:
            name = _type_name(schema, namespace)
            if name in found:
                raise ValueError(f"{path}: {name} is defined a second time")
            found[name] = schema
            for field in schema.get("fields", ()):
                _collect_definitions(field["type"], name.rpartition(".")[0] or None, found, path)
        elif kind in ("array", "map"):
            _collect_definitions(schema["items" if kind == "array" else "values"], namespace, found, path)
        elif kind not in _PRIMITIVES:
            _collect_definitions(kind, namespace, found, path)


def _self_contained(
    schema: Schema, namespace: str | None, definitions: dict[str, dict[str, Any]], defined: set[str]
) -> Schema:
    """`schema` with every named type written out in full at its first use and by full name after that.

    This is the form whose canonical form the Avro specification and the Java library fingerprint
    (contract section 4); fastavro would leave a type from another file as a bare name.
    """
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        name = _full_name(schema, namespace)
        if name in defined:
            return name
        if name not in definitions:
            raise ValueError(f"unknown type {name}")
        return _self_contained(definitions[name], name.rpartition(".")[0] or None, definitions, defined)
    if isinstance(schema, list):
        return [_self_contained(branch, namespace, definitions, defined) for branch in schema]
    kind = schema["type"]
    if kind in _NAMED_TYPES:
        name = _type_name(schema, namespace)
        if name in defined:
            raise ValueError(f"{name} is defined a second time")
        defined.add(name)
        out = {key: value for key, value in schema.items() if key != "namespace"}
        out["name"] = name
        if "fields" in schema:
            inner = name.rpartition(".")[0] or None
            out["fields"] = [
                {**field, "type": _self_contained(field["type"], inner, definitions, defined)}
                for field in schema["fields"]
            ]
        return out
    if kind in ("array", "map"):
        key = "items" if kind == "array" else "values"
        return {**schema, key: _self_contained(schema[key], namespace, definitions, defined)}
    if kind in _PRIMITIVES:
        return dict(schema)
    return _self_contained(kind, namespace, definitions, defined)


def _without_logical_types(schema: Schema) -> Schema:
    """A copy with no logicalType: fastavro then reads and writes timestamps as the ints on the wire."""
    if isinstance(schema, list):
        return [_without_logical_types(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if key != "logicalType"}
    if "fields" in out:
        out["fields"] = [{**field, "type": _without_logical_types(field["type"])} for field in out["fields"]]
    for key in ("items", "values"):
        if key in out:
            out[key] = _without_logical_types(out[key])
    if isinstance(out["type"], dict | list):
        out["type"] = _without_logical_types(out["type"])
    return out


# --- validation before encoding --------------------------------------------------------------------
# fastavro's writer lets some misfits through (True for an int, 1.5 written as 1, an int beyond 32
# bits in an int field) and fastavro's own validator is slow and prints whole schemas, so the codec
# compiles a small checker per schema that names the field at fault.


def _show(value: object) -> str:
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def _is_integer(value: object, bits: int) -> bool:
    limit = 1 << (bits - 1)
    return isinstance(value, int) and not isinstance(value, bool) and -limit <= value < limit


_PRIMITIVE_TESTS: dict[str, Callable[[object], bool]] = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "int": lambda value: _is_integer(value, 32),
    "long": lambda value: _is_integer(value, 64),
    "float": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "double": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "bytes": lambda value: isinstance(value, bytes),
    "string": lambda value: isinstance(value, str),
}


def _expect(description: str, test: Callable[[object], bool]) -> Check:
    def check(value: object) -> str | None:
        return None if test(value) else f": expected {description}, got {_show(value)}"

    return check


def _describe(schema: Schema) -> str:
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return f"{schema['type']} (timestamp-millis: int epoch milliseconds, UTC)"
    return _type_name(schema, None)


def _compile_check(schema: Schema, named: dict[str, Check]) -> Check:
    """A checker for a self-contained schema (full names throughout); `named` collects its named types."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_TESTS:
            return _expect(schema, _PRIMITIVE_TESTS[schema])
        return lambda value: named[schema](value)  # a type written out earlier in this schema
    if isinstance(schema, list):
        return _union_check(schema, [_compile_check(branch, named) for branch in schema])
    kind = schema["type"]
    if kind in ("record", "error"):
        return _record_check(schema, named)
    if kind == "enum":
        symbols = frozenset(schema["symbols"])
        check = _expect(f"one of {', '.join(schema['symbols'])}", lambda value: value in symbols)
    elif kind == "fixed":
        size = schema["size"]
        check = _expect(f"{size} bytes", lambda value: isinstance(value, bytes) and len(value) == size)
    elif kind == "array":
        check = _array_check(_compile_check(schema["items"], named))
    elif kind == "map":
        check = _map_check(_compile_check(schema["values"], named))
    else:
        return _expect(_describe(schema), _PRIMITIVE_TESTS[kind])
    if kind in _NAMED_TYPES:
        named[schema["name"]] = check
    return check


def _record_check(schema: dict[str, Any], named: dict[str, Check]) -> Check:
    fields: list[tuple[str, Check, bool]] = []
    field_names = frozenset(field["name"] for field in schema["fields"])

    def check(value: object) -> str | None:
        if not isinstance(value, dict):
            return f": expected a {schema['name']} record (a dict), got {_show(value)}"
        for name, field_check, has_default in fields:
            if name in value:
                problem = field_check(value[name])
                if problem is not None:
                    return f".{name}{problem}"
            elif not has_default:
                return f".{name}: required field is missing"
        if not field_names.issuperset(value):
            unknown = ", ".join(sorted(map(str, set(value) - field_names)))
            expected = ", ".join(field["name"] for field in schema["fields"])
            return f": unknown field(s) {unknown}; the schema has {expected}"
        return None

    named[schema["name"]] = check  # before the fields, so a recursive type finds itself
    fields.extend(
        (field["name"], _compile_check(field["type"], named), "default" in field) for field in schema["fields"]
    )
    return check


def _union_check(branches: list[Schema], checks: list[Check]) -> Check:
    description = " or ".join(_describe(branch) for branch in branches)

    def check(value: object) -> str | None:
        problems = []
        for branch in checks:
            problem = branch(value)
            if problem is None:
                return None
            problems.append(problem)
        # A record that fits a branch but for one inner field: name that field rather than the union.
        inner = [problem for problem in problems if problem[0] in ".["]
        return inner[0] if len(inner) == 1 else f": expected {description}, got {_show(value)}"

    if len(branches) == 2 and "null" in branches:  # the optional field, the only union in our schemas
        null_first = branches[0] == "null"
        other = checks[1 if null_first else 0]
        return lambda value: None if value is None or other(value) is None else check(value)
    return check


def _array_check(item: Check) -> Check:
    def check(value: object) -> str | None:
        if not isinstance(value, list | tuple):
            return f": expected an array (list), got {_show(value)}"
        for index, element in enumerate(value):
            problem = item(element)
            if problem is not None:
                return f"[{index}]{problem}"
        return None

    return check


def _map_check(values: Check) -> Check:
    def check(value: object) -> str | None:
        if not isinstance(value, dict):
            return f": expected a map (dict), got {_show(value)}"
        for key, element in value.items():
            if not isinstance(key, str):
                return f": map keys must be strings, got {_show(key)}"
            problem = values(element)
            if problem is not None:
                return f"[{key!r}]{problem}"
        return None

    return check


def codec_for_registry(url: str | None, auth_file: str | None = None, wait_s: float | None = None) -> "AvroCodec":
    """The codec every command uses: Confluent framing when a schema registry is configured (contract 4),
    with basic authentication from `auth_file` (`user:password` on its first line; never shown). With `wait_s`,
    no registry call blocks its caller longer (`SchemaRegistryClient`)."""
    if url is None:
        return AvroCodec()
    user_password = None
    if auth_file is not None:
        lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        user_password = lines[0].strip() if lines else ""
        if ":" not in user_password:
            raise RegistryAuthFileError(
                f"POA_SCHEMA_REGISTRY_AUTH_FILE {auth_file}: the first line must be user:password "
                "(the file's content is not shown)"
            )
    return AvroCodec(registry=SchemaRegistryClient(url, user_password=user_password, wait_s=wait_s))
