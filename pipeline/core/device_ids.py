"""EUI-64 device IDs as the DSP writes them: 8 hyphen-separated hex octets, any case."""

import re

from pipeline.core.bad_input import BadInput

_EUI64 = re.compile(r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}")
EUI64_BYTES = re.compile(_EUI64.pattern.encode())  # the same, for the fast readers of raw Avro bytes


def canonical_device_id(value: object, field: str = "device_id") -> str:
    """Upper-case form of a valid EUI-64; BadInput naming the field otherwise."""
    if not isinstance(value, str):
        raise BadInput(f"{field} must be a string, got {type(value).__name__}")
    if not _EUI64.fullmatch(value):
        raise BadInput(
            f"{field} {value!r} is not an EUI-64 device ID "
            "(expected 8 hyphen-separated hex octets, e.g. 00-DB-12-34-56-78-90-A0)"
        )
    return value.upper()
