"""The one error type for input that cannot be used: it ends on the dead-letter topic, never in a crash."""


class BadInput(Exception):
    """A record (or CSV row) that cannot be decoded or validated; the message is for a person."""
