"""Bad input at volume, generated: random bytes, truncated records, records of the wrong type, impossible
timestamps and malformed device IDs on every input topic, interleaved with a valid campaign. The worker
must keep running, dead-letter every bad record exactly once with a readable error naming where it came
from, and decide the valid traffic exactly as the rules say."""

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline.kafka import clients
from pipeline.settings import Settings, Topics
from tests.conftest import BOOTSTRAP, create_topics
from tests.integration.scenario import BASE, campaign
from tests.integration.scenario_play import write_live, write_reference
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess

pytestmark = pytest.mark.broker

GOOD_ALERT = {"alert_id": "g", "alert_code": "AD1", "device_id": "01-02-03-04-05-06-07-08", "mpxn": None,
              "raised_at": None, "received_at": BASE, "payload": None}
GOOD_TRACKED = {"device_id": "01-02-03-04-05-06-07-08", "manufacturer": None, "model": None,
                "firmware_version": None, "list_version": None, "added_at": BASE}
RECORD_OF = {"service_requests": "ServiceRequest", "activation_outcomes": "ActivationOutcome",
             "alerts": "DeviceAlert", "inventory": "InventoryRecord", "tracked_devices": "TrackedDevice"}
VALID: dict[str, dict[str, Any]] = {
    "alerts": GOOD_ALERT,
    "tracked_devices": GOOD_TRACKED,
    "inventory": {"device_id": "01-02-03-04-05-06-07-08", "device_type": "ESME", "chf_id": None, "mpxn": None,
                  "updated_at": BASE},
    "service_requests": {"request_id": "o:t:1", "service_reference_variant": "11.3",
                         "target_device_id": "01-02-03-04-05-06-07-08", "execution_datetime": None,
                         "firmware_hash": None, "received_at": BASE},
    "activation_outcomes": {"request_id": "o:t:1", "device_id": "01-02-03-04-05-06-07-08",
                            "outcome": "NO_IMAGE_HELD", "received_at": BASE},
}
TIME_FIELD = {"alerts": "received_at", "tracked_devices": "added_at", "inventory": "updated_at",
              "service_requests": "received_at", "activation_outcomes": "received_at"}
ID_FIELD = {"alerts": "device_id", "tracked_devices": "device_id", "inventory": "device_id",
            "service_requests": "target_device_id", "activation_outcomes": "device_id"}

topic_roles = st.sampled_from(sorted(RECORD_OF))
bad_ids = st.one_of(
    st.sampled_from(["00-11-22", "00 11 22 33 44 55 66 77", "00:11:22:33:44:55:66:77", "0011223344556677",
                     "00-11-22-33-44-55-66-7G", "00-11-22-33-44-55-66-77-88", ""]),
    st.text(max_size=12).filter(lambda s: not _is_eui64(s)),
)


def _is_eui64(text: str) -> bool:
    parts = text.split("-")
    return len(parts) == 8 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)


def _encoded(role: str, **changes: Any) -> bytes:
    return CODEC.encode(RECORD_OF[role], {**VALID[role], **changes})


@st.composite
def bad_records(draw: st.DrawFn) -> tuple[str, bytes]:
    """(topic role, value bytes) of one record the worker must dead-letter."""
    role = draw(topic_roles)
    kind = draw(st.sampled_from(["random", "truncated", "other_type", "timestamp", "device_id"]))
    if kind == "random":
        value = draw(st.binary(max_size=48).filter(lambda b: b[:2] != b"\xc3\x01"))
    elif kind == "truncated":
        full = _encoded(role)
        value = full[: draw(st.integers(min_value=1, max_value=len(full) - 1))]
    elif kind == "other_type":
        other = draw(topic_roles.filter(lambda r: RECORD_OF[r] != RECORD_OF[role]))
        value = _encoded(other)
    elif kind == "timestamp":
        value = _encoded(role, **{TIME_FIELD[role]: draw(st.one_of(
            st.integers(min_value=-(2**62), max_value=946_684_799_999),
            st.integers(min_value=32_503_680_000_000, max_value=2**62)))})
    else:
        value = _encoded(role, **{ID_FIELD[role]: draw(bad_ids)})
    return role, value


def fresh_settings(tmp: Path) -> Settings:
    tag = uuid.uuid4().hex[:10]
    topics = Topics(**{name: f"h{tag}.{default}" for name, default in vars(Topics()).items()})
    compacted = {"cleanup.policy": "compact"}
    create_topics(BOOTSTRAP, {topics.service_requests: 2, topics.activation_outcomes: 2, topics.alerts: 2,
                              topics.inventory: 2, topics.tracked_devices: 1},
                  {topics.inventory: compacted, topics.tracked_devices: compacted})
    return replace(Settings(), bootstrap_servers=BOOTSTRAP, app_id=f"poa-filter-prop-{tag}",
                   data_dir=str(tmp / tag / "state"), metrics_port=0, topics=topics)


# Each example is a whole worker run, so no shrinking: a failure is reported with the example as drawn.
@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=st.lists(bad_records(), min_size=20, max_size=80), seed=st.integers(0, 1000))
def test_generated_bad_input_is_dead_lettered_and_valid_traffic_decided(
    broker: str, tmp_path: Path, bad: list[tuple[str, bytes]], seed: int
) -> None:
    s = fresh_settings(tmp_path)
    sc = campaign(homes=12, seed=seed)
    dsp = DspProducer(s)
    write_reference(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(s, tmp_path).start()
    reader = OutputReader(s)
    delivered: list[tuple[str, int, int, bytes]] = []
    producer = clients.producer(s, {"enable.idempotence": True})
    try:
        worker.wait_ready()
        events = sc.events()
        spread = {round(i * len(events) / len(bad)): record for i, record in enumerate(bad)}

        def bad_record_before(i: int) -> None:
            if i in spread:
                role, value = spread[i]
                key = f"EE-00-00-00-00-00-{i // 256:02X}-{i % 256:02X}".encode()  # valid: the value is at fault
                producer.produce(getattr(s.topics, role), value, key,
                                 on_delivery=lambda err, msg: delivered.append(
                                     (msg.topic(), msg.partition(), msg.offset(), msg.value())))  # type: ignore[arg-type]
                producer.flush(30)

        sent = write_live(dsp, sc, before=bad_record_before)
        outputs = reader.wait_for(
            lambda o: o.alert_outputs >= len(sent) and len(o.dead_letters) >= len(delivered), 60,
            "every valid alert decided and every bad record dead-lettered", worker)
        assert worker.alive(), "the worker must never exit on input"

        letters = [(d["source_topic"], d["partition"], d["offset"], d["value"]) for _, d in outputs.dead_letters]
        assert sorted(letters) == sorted(delivered), "each bad record dead-lettered once, where it came from"
        for _, letter in outputs.dead_letters:
            assert len(letter["error"]) > 15 and letter["error"][0].isalpha(), letter["error"]

        decided = {a: ("forward", None) for a in outputs.forwarded_ids()}
        decided.update({x["alert"]["alert_id"]: ("suppress", x["activation_request_id"])
                        for _, x in outputs.suppressed})
        assert len(outputs.forwarded) + len(outputs.suppressed) == len(sent), "each valid alert exactly once"
        assert decided == sc.reference_decisions()
    finally:
        worker.stop()
        reader.close()
