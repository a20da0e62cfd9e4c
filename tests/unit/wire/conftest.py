"""Fixtures of the wire tests: the fake schema registry (fake_registry.py), running."""

from collections.abc import Iterator

import pytest

from tests.unit.wire.fake_registry import FakeRegistry, Serving


@pytest.fixture
def serving() -> Iterator[Serving]:
    running = Serving(FakeRegistry())
    yield running
    if running.server is not None:
        running.stop()


@pytest.fixture
def registry(serving: Serving) -> tuple[FakeRegistry, str]:
    return serving.fake, f"http://127.0.0.1:{serving.port}/"
