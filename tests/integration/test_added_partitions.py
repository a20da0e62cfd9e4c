"""Partitions the DSP adds to an input topic while a worker runs: read from their start, and waited for."""

from pathlib import Path

import pytest
from confluent_kafka.admin import NewPartitions

from pipeline.kafka import clients
from pipeline.settings import Settings
from tests.integration.scenario import MIN
from tests.integration.test_worker_bad_input import CHF, ESME, T0, alert, request
from tests.integration.worker_harness import CODEC, DspProducer, OutputReader, WorkerProcess, wait_until

pytestmark = pytest.mark.broker


def test_a_request_on_a_partition_added_at_run_time_suppresses_its_alert(settings: Settings, tmp_path: Path) -> None:
    t = settings.topics
    dsp = DspProducer(settings)
    dsp.tracked_esme_on(CHF, ESME, T0)
    worker = WorkerProcess(settings, tmp_path, POA_PARTITION_CHECK_SECONDS="0.5").start()
    reader = OutputReader(settings)
    try:
        worker.wait_ready()
        admin = clients.admin_client(settings)
        for future in admin.create_partitions([NewPartitions(t.service_requests, 4)]).values():
            future.result(30)
        wait_until(lambda: f"{t.service_requests}[3]" in worker.log(), 30, "the added partition read", worker)

        # The activation exists only on the new partition; the AD1 in its window must be suppressed.
        value = CODEC.encode("ServiceRequest", request("r-new-partition", T0 - MIN, T0))
        dsp.producer.produce(t.service_requests, value, ESME.encode(), partition=3)
        dsp.flush()
        dsp.record(t.alerts, CHF, "DeviceAlert", alert("ad1-in-window", T0 + 5 * MIN))
        dsp.flush()

        outputs = reader.wait_for(lambda o: o.alert_outputs >= 1, 60, "the AD1 decided", worker)
        assert outputs.forwarded_ids() == []
        assert [(s["alert"]["alert_id"], s["activation_request_id"]) for _, s in outputs.suppressed] == [
            ("ad1-in-window", "r-new-partition")
        ]
    finally:
        worker.stop()
        reader.close()
