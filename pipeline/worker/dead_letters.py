"""Dead letters: an input record the filter cannot use, written with the reason to the dead-letter topic."""

import logging

from pipeline.wire.avro_codec import AvroCodec
from pipeline.wire.output_records import Output, dead_letter

log = logging.getLogger(__name__)


def dead_letter_record(
    codec: AvroCodec,
    dead_letter_topic: str,
    source: tuple[str, int, int],
    key: bytes | None,
    value: bytes | None,
    error: str,
) -> Output:
    """The record to write for the input record at `source` (topic, partition, offset)."""
    topic, partition, offset = source
    log.info("dead letter %s[%d]@%d: %s", topic, partition, offset, error)
    record = dead_letter(topic, partition, offset, key, value, error)
    return Output(dead_letter_topic, key, codec.encode("DeadLetter", record, dead_letter_topic))
