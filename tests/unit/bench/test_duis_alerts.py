"""The bench's DUIS alerts (contract 9) are its Avro alerts in another format: the same codes, devices, times and
decisions due, so the DUIS drain measures the format and nothing else."""

from bench.scenario import AlertFactory, AlertMix, MadeAlert, WorldParams, alert_id_of, backlog, build_campaign
from pipeline.wire import input_records
from pipeline.wire.avro_codec import AvroCodec

CODEC = AvroCodec()
WORLD = WorldParams(tracked=2_000, untracked=200, campaign=400, now_ms=1_796_690_766_000, seed=3)


def alerts(duis: bool) -> list[MadeAlert]:
    factory = AlertFactory(WORLD, build_campaign(WORLD), CODEC, AlertMix(0.2, 0.2), "seed", duis=duis)
    return list(backlog(factory, 500, WORLD.now_ms - 3_600_000, WORLD.now_ms - 60_000, "D"))


def test_the_duis_backlog_is_the_avro_one_as_documents() -> None:
    avro, duis = alerts(duis=False), alerts(duis=True)
    assert [a.expected for a in duis] == [a.expected for a in avro] and {a.expected for a in duis} == {
        "suppress", "forward"
    }  # fmt: skip
    ids = set()
    for a, d in zip(avro, duis, strict=True):
        _, want = input_records.device_alert(CODEC, a.value, None)
        datum, got = input_records.device_alert(CODEC, d.value, d.received_at)
        assert (got.alert_code, got.device_id, got.received_at, d.key) == (
            want.alert_code, want.device_id, want.received_at, a.key
        )  # fmt: skip
        assert d.received_at == want.received_at and datum["payload"] == d.value
        assert alert_id_of(d.value) == got.alert_id.encode()
        ids.add(got.alert_id)
    assert len(ids) == len(duis)
