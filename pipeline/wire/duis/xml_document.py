"""DUIS XML read safely and strictly: one parser that never fetches or expands anything, and value readers
whose errors name the element path, for the DSP engineer who has to find the fault in the document.

Elements are matched by namespace URI and local name (never by prefix), children in the schema's order.
"""

import base64
import binascii
import re
import threading
from typing import Any, NamedTuple

from lxml import etree

from pipeline.core.bad_input import BadInput

SR = "http://www.dccinterface.co.uk/ServiceUserGateway"
_SR_TAG = "{" + SR + "}"
DS = "http://www.w3.org/2000/09/xmldsig#"
_DS_SIGNATURE = "{" + DS + "}Signature"
MAX_DOCUMENT_BYTES = 1 << 20
MAX_COUNTER = 2**64 - 1

# XML whitespace only: str.strip() would also remove Unicode spaces the schema types do not allow.
_XML_WHITESPACE = " \t\r\n"
_WHITESPACE_BYTES = _XML_WHITESPACE.encode()
_LESS_THAN = ord("<")
_XML_WHITESPACE_RUN = re.compile(r"[ \t\r\n]+")
_EUI64 = re.compile(r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}")
_DECIMAL_COUNTER = re.compile(r"[1-9][0-9]{0,19}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
_DATE_TIME = re.compile(
    r"(?P<sign>-?)(?P<year>[0-9]{4,})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?"
)
_LONG_MAX = 2**63 - 1
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_DOCTYPE = b"<!DOCTYPE"
_DOCTYPE_REFUSED = (
    "DUIS document has a DOCTYPE (document type declaration); DUIS never uses one and the filter refuses it, "
    "with any entity it declares, unread"
)

_local = threading.local()


def _parser() -> Any:
    """One parser a thread (lxml parsers are not thread-safe); nothing is loaded, resolved or fetched."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,
        )
        _local.parser = parser
    return parser


def is_duis(value: bytes | None) -> bool:
    """Contract 9: a value whose first byte other than whitespace is `<` is a DUIS document (Avro records start
    with 0x00 or 0xC3, so the first byte alone decides nearly always)."""
    if not value:
        return False
    first = value[0]
    if first == _LESS_THAN:
        return True
    return first in _WHITESPACE_BYTES and value.lstrip(_WHITESPACE_BYTES)[:1] == b"<"


def parse(value: bytes) -> "Element":
    """The document's root element; BadInput for anything over the size cap, not well-formed, or with a DTD."""
    if len(value) > MAX_DOCUMENT_BYTES:
        raise BadInput(f"DUIS document of {len(value)} bytes is over the {MAX_DOCUMENT_BYTES} bytes (1 MiB) limit")
    if _DOCTYPE in value:  # before parsing, so that no entity is even declared (libxml2 still sizes them)
        raise BadInput(_DOCTYPE_REFUSED)
    document = value.lstrip(_WHITESPACE_BYTES)
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as e:
        raise BadInput(_syntax_error(e, document)) from None
    # Without a DTD an entity reference other than the five predefined ones is not well-formed, so the
    # tree can hold none; the DTD check stands for documents the byte scan cannot see (another encoding).
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise BadInput(_DOCTYPE_REFUSED)
    return Element(root)


def _syntax_error(e: Any, document: bytes) -> str:
    """libxml2's message in terms a DSP engineer can act on, with where it happened."""
    line, column = e.position
    where = f"line {line}, column {column}"
    msg = re.sub(r", line \d+, column \d+$", "", str(e.msg))
    if m := re.fullmatch(r"Premature end of data in tag (\S+) line (\d+)", msg):
        return (
            f"DUIS document ends at {where} before <{m[1]}> (opened on line {m[2]}) is closed: "
            "truncated or not the whole document"
        )
    if msg.startswith("Document is empty") or msg.startswith("Start tag expected"):
        return f"DUIS document has no root element ({where}): empty or not XML"
    last_line = document.rsplit(b"\n", 1)[-1]
    if line == document.count(b"\n") + 1 and column >= len(last_line):
        return f"DUIS document ends at {where} in the middle of markup ({msg}): truncated or not the whole document"
    if msg.startswith("Extra content at the end of the document"):
        return f"DUIS document has content after its root element ends, at {where}: two documents in one record?"
    if m := re.fullmatch(r"Opening and ending tag mismatch: (\S+) line (\d+) and (\S+)", msg):
        return f"DUIS document is not well-formed at {where}: </{m[3]}> does not close <{m[1]}> (opened on line {m[2]})"
    return f"DUIS document is not well-formed XML at {where}: {msg}"


def path_of(at: "Where") -> str:
    return at if isinstance(at, str) else at.path


def collapse(text: str) -> str:
    """xs:token's whitespace rule: runs of XML whitespace become one space, none at either end."""
    value = text.strip(_XML_WHITESPACE)
    if "  " in value or "\t" in value or "\n" in value or "\r" in value:
        value = _XML_WHITESPACE_RUN.sub(" ", value)
    return value


class DuisId(NamedTuple):
    """A RequestID or ResponseID, `originator:target:counter`, device IDs canonical (upper case). A tuple:
    one is made for every document, and a frozen dataclass costs several times as much to make."""

    originator: str
    target: str
    counter: int

    def __str__(self) -> str:
        return f"{self.originator}:{self.target}:{self.counter}"


def eui64(text: str, at: "Where") -> str:
    """A device ID in canonical form; surrounding whitespace collapsed, as xs:token says."""
    return _canonical_eui64(collapse(text), at)


def _canonical_eui64(value: str, at: "Where") -> str:
    if not _EUI64.fullmatch(value):
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is not an EUI-64 device ID "
            "(expected 8 hyphen-separated hex octets, e.g. 00-DB-12-34-56-78-90-A0)"
        )
    return value.upper()


def duis_id(text: str, at: "Where") -> DuisId:
    """`EUI:EUI:counter`, the counter decimal 1 to 2^64 - 1 without leading zeros."""
    value = collapse(text)
    parts = value.split(":")
    if len(parts) != 3:
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is not originator:target:counter (two EUI-64s and a decimal counter)"
        )
    originator = _canonical_eui64(parts[0], at)
    target = _canonical_eui64(parts[1], at)
    if not _DECIMAL_COUNTER.fullmatch(parts[2]) or int(parts[2]) > MAX_COUNTER:
        raise BadInput(
            f"{path_of(at)}: counter {_shorten(parts[2])!r} is not a decimal from 1 to {MAX_COUNTER} (2^64 - 1) "
            "without leading zeros"
        )
    return DuisId(originator, target, int(parts[2]))


def token(text: str, at: "Where") -> str:
    """xs:token, not empty."""
    value = collapse(text)
    if not value:
        raise BadInput(f"{path_of(at)}: empty")
    return value


def hex_binary(text: str, at: "Where") -> bytes:
    value = collapse(text)
    if not _HEX.fullmatch(value):
        raise BadInput(f"{path_of(at)}: {_shorten(value)!r} is not hexBinary (an even number of hex digits)")
    return bytes.fromhex(value)


def base64_binary(text: str, at: "Where") -> bytes:
    """Strict base64: whitespace (line wrapping) removed, then every character and the padding checked."""
    value = re.sub(r"[ \t\r\n]", "", text)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or base64.b64encode(data).decode("ascii") != value:
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is not base64 (characters A-Z a-z 0-9 + / and = padding only)"
        )
    return data


def integer(text: str, at: "Where", low: int, high: int) -> int:
    value = collapse(text)
    if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise BadInput(f"{path_of(at)}: {_shorten(value)!r} is not an integer from {low} to {high}")
    return int(value)


def date_time(text: str, at: "Where") -> int:
    """xs:dateTime in epoch ms: no zone is UTC, offsets applied, fraction cut (not rounded) to the ms,
    24:00:00 the midnight ending the day, years past 9999 allowed. The valid range is validation's to judge."""
    value = collapse(text)
    m = _DATE_TIME.fullmatch(value)
    if m is None:
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is not an xs:dateTime (e.g. 2030-01-15T09:00:00.00Z, "
            "YYYY-MM-DDThh:mm:ss with optional fraction and zone)"
        )
    sign, year_text, month_text, day_text, hour_text, minute_text, second_text, fraction, zone = m.groups()
    # Nine digits are past any timestamp in milliseconds already; more would only cost int() time.
    if sign or len(year_text) > 9 or int(year_text) == 0:
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is outside the valid range (year {sign}{_shorten(year_text, 12)})"
        )
    if len(year_text) > 4 and year_text.startswith("0"):
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is not an xs:dateTime "
            "(a year of more than 4 digits has no leading zero)"
        )
    year, month, day = int(year_text), int(month_text), int(day_text)
    hour, minute, second = int(hour_text), int(minute_text), int(second_text)
    fraction = fraction or ""
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is not a date (no day {day:02d} in month {month:02d} of {year})"
        )
    if hour == 24 and (minute, second) == (0, 0) and not fraction.strip("0"):
        hour, fraction, day_carry = 0, "", 1
    elif hour > 23 or minute > 59 or second > 59:
        raise BadInput(f"{path_of(at)}: {_shorten(value)!r} is not a time of day (00:00:00 to 23:59:59, or 24:00:00)")
    else:
        day_carry = 0
    offset_minutes = 0
    if zone and zone != "Z":
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_minutes > 59 or zone_hours * 60 + zone_minutes > 14 * 60:
            raise BadInput(f"{path_of(at)}: {_shorten(value)!r} has a zone offset {zone} outside -14:00 to +14:00")
        offset_minutes = (zone_hours * 60 + zone_minutes) * (-1 if zone[0] == "-" else 1)
    days = _days_from_civil(year, month, day) + day_carry
    seconds = ((days * 24 + hour) * 60 + minute - offset_minutes) * 60 + second
    ms = seconds * 1000 + int((fraction + "000")[:3])
    if ms > _LONG_MAX:
        raise BadInput(
            f"{path_of(at)}: {_shorten(value)!r} is outside the valid range (past any timestamp in milliseconds)"
        )
    return ms


def _days_in_month(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar, for any year (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class Element:
    """One element of the document; its path by local names from the root is built only for error messages."""

    __slots__ = ("_node", "tag", "_parent")

    def __init__(self, node: Any, parent: "Element | None" = None) -> None:
        self._node = node
        self.tag: str = node.tag  # "{namespace}local", as lxml gives it
        self._parent = parent

    @property
    def namespace(self) -> str | None:
        return self.tag[1:].partition("}")[0] if self.tag.startswith("{") else None

    @property
    def local(self) -> str:
        return self.tag.rpartition("}")[2]

    @property
    def path(self) -> str:
        return ("" if self._parent is None else self._parent.path) + "/" + self.local

    def is_sr(self, local: str) -> bool:
        return self.tag == _SR_TAG + local

    def describe(self) -> str:
        """How a person would name this element: its local name, and its namespace when not DUIS's."""
        if self.namespace == SR:
            return self.local
        return f"{self.local} (namespace {self.namespace})" if self.namespace else f"{self.local} (no namespace)"

    def attribute(self, name: str) -> str | None:
        value = self._node.get(name)
        return None if value is None else str(value)

    def text(self) -> str:
        """Simple content: the text, comments and processing instructions left out; child elements refused."""
        node = self._node
        if not len(node):
            return node.text or ""
        parts = [node.text or ""]
        for child in node:
            if isinstance(child.tag, str):
                raise BadInput(f"{self.path}: unexpected child element {Element(child).describe()}")
            parts.append(child.tail or "")
        return "".join(parts)

    def children(self) -> "Children":
        return Children(self)

    def element_nodes(self) -> list["Element"]:
        """Element children; text between them (other than whitespace) is refused, comments are skipped."""
        node = self._node
        if node.text and node.text.strip(_XML_WHITESPACE):
            raise BadInput(f"{self.path}: unexpected text {_shorten(collapse(node.text))!r}")
        children = []
        for child in node:
            if isinstance(child.tag, str):
                children.append(Element(child, self))
            tail = child.tail
            if tail and tail.strip(_XML_WHITESPACE):
                raise BadInput(f"{self.path}: unexpected text {_shorten(collapse(tail))!r}")
        return children

    # The value readers, each naming this element's path in its error.
    def token(self) -> str:
        return token(self.text(), self)

    def eui64(self) -> str:
        return eui64(self.text(), self)

    def duis_id(self) -> DuisId:
        return duis_id(self.text(), self)

    def hex_binary(self) -> bytes:
        return hex_binary(self.text(), self)

    def base64_binary(self) -> bytes:
        return base64_binary(self.text(), self)

    def integer(self, low: int, high: int) -> int:
        return integer(self.text(), self, low, high)

    def date_time(self) -> int:
        return date_time(self.text(), self)


Where = str | Element  # an element, or the path to name in an error


class Children:
    """The element children of one element, taken in the schema's order: anything missing, out of order,
    repeated or unknown is bad input naming where."""

    __slots__ = ("_parent", "_items", "_next")

    def __init__(self, parent: Element) -> None:
        self._parent = parent
        self._items = parent.element_nodes()
        self._next = 0

    def peek(self) -> Element | None:
        return self._items[self._next] if self._next < len(self._items) else None

    def optional(self, local: str) -> Element | None:
        items, i = self._items, self._next
        if i < len(items) and items[i].tag == _SR_TAG + local:
            self._next = i + 1
            return items[i]
        return None

    def required(self, local: str) -> Element:
        item = self.optional(local)
        if item is None:
            raise self._missing(local)
        return item

    def one_of(self, *locals_: str) -> Element:
        item = self.peek()
        if item is not None and item.namespace == SR and item.local in locals_:
            return self.required(item.local)
        raise self._missing(" or ".join(locals_))

    def skip_rest(self) -> None:
        """Content the filter does not read (the DSP has validated it against the schema)."""
        self._next = len(self._items)

    def end(self, signature: bool = False) -> None:
        """No more children, but for one ds:Signature where the schema allows it (kept in the bytes, not read)."""
        items, i = self._items, self._next
        if i == len(items):
            return
        item = items[i]
        if signature and item.tag == _DS_SIGNATURE and i == len(items) - 1:
            return
        if item.namespace == SR and item.local in self._taken():
            raise BadInput(f"{item.path}: repeated, or out of order (the schema has it before {self._after()})")
        raise BadInput(f"{self._parent.path}: unexpected element {item.describe()} after {self._after()}")

    def _taken(self) -> list[str]:
        return [item.local for item in self._items[: self._next]]

    def _after(self) -> str:
        return self._items[self._next - 1].local if self._next else "the start"

    def _missing(self, expected: str) -> BadInput:
        item = self.peek()
        if item is None:
            return BadInput(f"{self._parent.path}: {expected} is missing (after {self._after()})")
        later = [i for i in self._items[self._next + 1 :] if i.namespace == SR and i.local in expected.split(" or ")]
        if later:
            return BadInput(f"{later[0].path}: out of order (the schema has it before {item.describe()})")
        return BadInput(f"{self._parent.path}: expected {expected}, found {item.describe()}")
