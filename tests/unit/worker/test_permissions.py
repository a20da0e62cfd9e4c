"""A missing permission is named on /ready and in the log (once a minute), and lifted once the path works."""

import logging
from typing import cast

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from pipeline.settings import Settings
from pipeline.worker.metrics import Readiness
from pipeline.worker.permissions import PermissionWatch
from tests.unit.worker.fake_clock import FakeClock


def watch(clock: FakeClock | None = None) -> tuple[PermissionWatch, Readiness]:
    readiness = Readiness()
    settings = Settings()
    admin = cast(AdminClient, None)
    return PermissionWatch(readiness, settings, admin, f"{settings.app_id}-x-tx", clock or FakeClock()), readiness


def test_a_denied_read_is_named_and_holds_ready_until_the_topic_is_read_again() -> None:
    permissions, readiness = watch()
    readiness.set(None)
    assert permissions.state_read_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), "dsp.inventory")
    readiness.set(None)  # the loop's own state does not lift it
    assert readiness.status() == (
        False, "missing permission: TOPIC_AUTHORIZATION_FAILED on topic dsp.inventory (grant Read)"
    )
    permissions.state_read(["dsp.tracked-devices"])
    assert not readiness.status()[0]
    permissions.state_read(["dsp.inventory"])
    assert readiness.status() == (True, "ready") and not permissions.denied


def test_a_consumer_level_group_error_names_the_group() -> None:
    permissions, readiness = watch()
    assert permissions.alert_read_error(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), None)
    assert "GROUP_AUTHORIZATION_FAILED on group poa-filter (grant Read)" in readiness.status()[1]
    permissions.alerts_read()
    assert readiness.status()[0] is False  # still "starting": lifting a hold does not make the worker ready
    assert readiness.status()[1] == "starting"


def test_other_errors_are_not_permissions() -> None:
    permissions, readiness = watch()
    assert not permissions.state_read_error(KafkaError(KafkaError._TRANSPORT), "dsp.inventory")
    assert not permissions.producer_error(KafkaError(KafkaError._TIMED_OUT), "transaction")
    assert not permissions.denied


def test_the_transactional_id_is_named() -> None:
    permissions, readiness = watch()
    assert permissions.producer_error(KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED), "producer")
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED on transactional ID poa-filter-x-tx (grant Write)" in (
        readiness.status()[1]
    )


def test_a_standing_denial_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    permissions, _ = watch(clock)
    denied = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)
    with caplog.at_level(logging.ERROR, logger="pipeline.worker.permissions"):
        for _ in range(5):
            permissions.alert_read_error(denied, None)
            clock.advance(10)
        assert len(caplog.records) == 1
        clock.advance(20)
        permissions.alert_read_error(denied, None)
        assert len(caplog.records) == 2


def test_the_evidence_readers_refusals_name_the_alert_topic_and_its_own_group() -> None:
    permissions, readiness = watch()
    assert permissions.evidence_read_error(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), None)
    assert "GROUP_AUTHORIZATION_FAILED on group poa-filter.evidence-reader (grant Describe)" in readiness.status()[1]
    assert permissions.evidence_read_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), "dsp.alerts")
    assert "TOPIC_AUTHORIZATION_FAILED on topic dsp.alerts (grant Read)" in readiness.status()[1]
    permissions.evidence_read()
    assert permissions.denied, "the group's refusal lifts only once it has not been seen for a while"
