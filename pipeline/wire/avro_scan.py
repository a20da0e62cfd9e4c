"""A strict, schema-directed walk over an Avro binary body: the verdict on bytes fastavro reads too freely.

fastavro's reader trusts the bytes: a negative enum or union index picks a symbol or branch from the
end of a Python list (a corrupt ActivationOutcome with index -3 is read as HASH_MISMATCH), and a varint
of any length is read. The Java library, the reference implementation, rejects those. The scan walks
the body as the Java library reads it and raises `CorruptBody` naming the field and byte at fault:
enum and union indexes in range; lengths within the body; strings valid UTF-8; ints within 32 bits and
5 bytes, longs within 10 bytes. It returns where the body ends; whether anything may follow is the
caller's business. Overlong varints that the Java library reads (a value written with more bytes than
it needs) are accepted.

Stricter than the Java library, which reads an int of more than 32 bits as its low 32 bits and invalid
UTF-8 with replacement characters: both are corrupt here, as no producer of ours writes them and Python
could not pass the original value on. A boolean byte other than 0 or 1 is corrupt too (Java reads false).

The scan runs beside fastavro on every record the generic path reads, so each schema is compiled to
straight-line Python (a record's fields inline, the one-byte varint read in place, the rest in helpers):
a third of the cost of walking the schema at run time.
"""

from collections.abc import Callable
from typing import Any

_INT_BYTES = 5  # the Java library's longest int varint
_LONG_BYTES = 10  # and longest long varint
_LONG_MASK = (1 << 64) - 1
_WIDTHS = {"float": 4, "double": 8}

ScanFunction = Callable[[bytes, int], int]
ItemFunction = Callable[[bytes, int, str], int]


class CorruptBody(Exception):
    """The bytes are not an Avro encoding of the schema: what is wrong, in which field, at which byte."""

    def __init__(self, problem: str, pos: int, path: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.pos = pos
        self.path = path

    def within(self, field: str) -> "CorruptBody":
        """The same fault, seen from the record that holds the record it is in."""
        self.path = f"{field}.{self.path}" if self.path else field
        return self

    def __str__(self) -> str:
        return f"{self.path + ': ' if self.path else ''}{self.problem}, at byte {self.pos}"


def compile_scan(schema: Any, utf8: bool = True) -> ScanFunction:
    """`scan(data, pos)`: where the body that starts at pos ends; CorruptBody if it is not one of the schema.

    `schema`: self-contained, with full names (named types in full at first use). `utf8=False` leaves the
    strings' UTF-8 to the reader that follows (fastavro checks it as strictly): a faster scan.
    """
    return _Generator(schema, utf8).scan


class _Generator:
    """Writes the Python source of a schema's scan, and runs it."""

    def __init__(self, schema: Any, utf8: bool) -> None:
        self._utf8 = utf8
        if not (isinstance(schema, dict) and schema.get("type") in ("record", "error")):
            schema = {"type": "record", "name": "", "fields": [{"name": "", "type": schema}]}
        self._sources: list[str] = []
        self._named = 0  # functions named so far: each gets a number of its own
        self._functions: dict[str, str] = {}  # record full name -> its generated function
        self._definitions: dict[str, Any] = {}  # named types written out so far, by full name
        top = self._record_function(schema)
        namespace: dict[str, Any] = {
            "CorruptBody": CorruptBody,
            "_varint": _varint,
            "_index": _index,
            "_length": _length,
            "_past_end": _past_end,
            "_blocks": _blocks,
        }
        exec("\n\n".join(self._sources), namespace)  # noqa: S102 - generated from the schema alone
        self.scan: ScanFunction = namespace[top]

    def _new_function(self) -> str:
        # Numbered as named, not as written: an array's item function is named before the record
        # functions its body writes, and a name taken from those counts could be given twice.
        self._named += 1
        return f"scan_{self._named}"

    def _record_function(self, record: dict[str, Any]) -> str:
        """A function for the record, its fields inline; a record within it is a call to its own function."""
        function = self._new_function()
        self._functions[record["name"]] = function
        self._definitions[record["name"]] = record
        lines = [f"def {function}(data, pos):", "    at = ''", "    try:"]
        for field in record["fields"]:
            lines.append(f"        at = {field['name']!r}")
            lines.extend(self._value(field["type"], "        "))
        lines.extend(
            [
                "        return pos",
                "    except IndexError:",
                "        raise CorruptBody('the body ends inside this field (truncated)', len(data), at) from None",
                "    except UnicodeDecodeError as exc:",
                "        raise CorruptBody(f'invalid UTF-8 in a string ({exc.reason})', pos, at) from None",
            ]
        )
        self._sources.append("\n".join(lines))
        return function

    def _value(self, schema: Any, indent: str) -> list[str]:
        """Lines that check one value of the schema at `pos` and leave `pos` just after it."""
        if isinstance(schema, list):
            return self._union(schema, indent)
        if isinstance(schema, str):
            if schema in self._definitions:  # a named type written out earlier
                return self._value(self._definitions[schema], indent)
            return _primitive(schema, indent, self._utf8)
        kind = schema["type"]
        if kind in ("record", "error"):
            if schema["name"] not in self._functions:
                self._record_function(schema)
            return [
                f"{indent}try:",
                f"{indent}    pos = {self._functions[schema['name']]}(data, pos)",
                f"{indent}except CorruptBody as exc:",
                f"{indent}    raise exc.within(at) from None",
            ]
        if kind == "enum":
            self._definitions[schema["name"]] = schema
            count = len(schema["symbols"])
            return [
                f"{indent}b = data[pos]",
                f"{indent}if b < {min(2 * count, 0x80)} and not b & 1:",
                f"{indent}    pos += 1",
                f"{indent}else:",
                f"{indent}    pos = _index(data, pos, {count}, 'enum', at)[1]",
            ]
        if kind == "fixed":
            self._definitions[schema["name"]] = schema
            return _width(schema["size"], indent)
        if kind in ("array", "map"):
            item = self._item_function(schema["items" if kind == "array" else "values"])
            return [f"{indent}pos = _blocks(data, pos, {item}, {kind == 'map'}, at)"]
        return self._value(kind, indent)  # {"type": "long", "logicalType": ...}, or a name

    def _union(self, branches: list[Any], indent: str) -> list[str]:
        lines = [
            f"{indent}b = data[pos]",
            f"{indent}if b < {min(2 * len(branches), 0x80)} and not b & 1:",
            f"{indent}    i = b >> 1",
            f"{indent}    pos += 1",
            f"{indent}else:",
            f"{indent}    i, pos = _index(data, pos, {len(branches)}, 'union', at)",
        ]
        for index, branch in enumerate(branches):
            body = self._value(branch, indent + "    ") or [f"{indent}    pass"]
            lines.extend([f"{indent}{'if' if index == 0 else 'elif'} i == {index}:", *body])
        return lines

    def _item_function(self, schema: Any) -> str:
        """A function for one item of an array or map; a fault in it is named by the array's field."""
        function = self._new_function()
        self._sources.append(
            "\n".join([f"def {function}(data, pos, at):", *self._value(schema, "    "), "    return pos"])
        )
        return function


def _primitive(name: str, indent: str, utf8: bool) -> list[str]:
    if name == "null":
        return []
    if name in _WIDTHS:
        return _width(_WIDTHS[name], indent)
    if name in ("string", "bytes"):
        lines = [  # lengths up to 63 take one byte, up to 8191 two
            f"{indent}b = data[pos]",
            f"{indent}if b < 0x80 and not b & 1:",
            f"{indent}    start = pos + 1",
            f"{indent}    end = start + (b >> 1)",
            f"{indent}elif not b & 1 and data[pos + 1] < 0x80:",
            f"{indent}    start = pos + 2",
            f"{indent}    end = start + (((b & 0x7F) | data[pos + 1] << 7) >> 1)",
            f"{indent}else:",
            f"{indent}    start, end = _length(data, pos, at)",
            f"{indent}if end > len(data):",
            f"{indent}    _past_end(data, pos, at)",
        ]
        if name == "string" and utf8:
            lines.append(f"{indent}data[start:end].decode()")
        return [*lines, f"{indent}pos = end"]
    if name == "boolean":
        return [
            f"{indent}if data[pos] > 1:",
            f"{indent}    raise CorruptBody(f'boolean byte {{data[pos]}} is neither 0 nor 1', pos, at)",
            f"{indent}pos += 1",
        ]
    if name == "int":
        return [
            f"{indent}if data[pos] < 0x80:",
            f"{indent}    pos += 1",
            f"{indent}else:",
            f"{indent}    value, end = _varint(data, pos, {_INT_BYTES}, at)",
            f"{indent}    if not -(1 << 31) <= value < 1 << 31:",
            f"{indent}        raise CorruptBody(f'int {{value}} beyond 32 bits', pos, at)",
            f"{indent}    pos = end",
        ]
    if name == "long":  # skipped byte by byte: its value does not matter, only that it ends in 10 bytes
        return [
            f"{indent}start = pos",
            f"{indent}while data[pos] > 0x7F:",
            f"{indent}    pos += 1",
            f"{indent}pos += 1",
            f"{indent}if pos - start > {_LONG_BYTES}:",
            f"{indent}    _varint(data, start, {_LONG_BYTES}, at)",
        ]
    raise ValueError(f"not an Avro type: {name}")


def _width(size: int, indent: str) -> list[str]:
    return [
        f"{indent}if pos + {size} > len(data):",
        f"{indent}    raise CorruptBody('the body ends inside {size} fixed-width bytes (truncated)', pos, at)",
        f"{indent}pos += {size}",
    ]


def _varint(data: bytes, pos: int, max_bytes: int, path: str) -> tuple[int, int]:
    """The zig-zag varint at pos as the Java library reads it: (value, next position)."""
    result = 0
    for i in range(max_bytes):
        try:
            b = data[pos + i]
        except IndexError:
            raise CorruptBody("the body ends inside a number (truncated)", pos + i, path) from None
        result |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            result &= _LONG_MASK  # Java and fastavro keep the low 64 bits of a 10-byte varint
            return (result >> 1) ^ -(result & 1), pos + i + 1
    raise CorruptBody(f"a number written in more than {max_bytes} bytes (the most the Java library reads)", pos, path)


def _index(data: bytes, pos: int, count: int, what: str, path: str) -> tuple[int, int]:
    """An enum or union index (an int) that must name one of `count` symbols or branches: (index, next)."""
    index, end = _varint(data, pos, _INT_BYTES, path)
    if not 0 <= index < count:
        raise CorruptBody(f"{what} index {index} out of range 0 to {count - 1}", pos, path)
    return index, end


def _length(data: bytes, pos: int, path: str) -> tuple[int, int]:
    """A string's or bytes' length that is not one non-negative byte: (start of content, its end)."""
    length, start = _varint(data, pos, _LONG_BYTES, path)
    if length < 0:
        raise CorruptBody(f"length {length} is negative", pos, path)
    return start, start + length


def _past_end(data: bytes, pos: int, path: str) -> None:
    start, end = _length(data, pos, path)
    raise CorruptBody(f"{end - start} bytes run past the end of the body (truncated)", pos, path)


def _blocks(data: bytes, pos: int, item: ItemFunction, keyed: bool, path: str) -> int:
    """Array or map items in blocks: a count (negative: followed by the block's size) until a count of 0."""
    while True:
        count, pos = _varint(data, pos, _LONG_BYTES, path)
        if count == 0:
            return pos
        if count < 0:
            count = -count
            _size, pos = _varint(data, pos, _LONG_BYTES, path)
        for index in range(count):
            start = pos
            if keyed:
                key_start, pos = _length(data, pos, path + " key")
                if pos > len(data):
                    _past_end(data, start, path + " key")
                data[key_start:pos].decode()
            pos = item(data, pos, path)
            if pos == start:
                break  # items of this type take no bytes (null): the whole block is read
            if pos >= len(data):
                raise CorruptBody(f"the body ends after item {index} of a block of {count} (truncated)", pos, path)
