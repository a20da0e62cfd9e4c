"""The worker through its real interface: a `poa-filter worker` process, a real broker, real topics."""

from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.scenario import campaign
from tests.integration.scenario_play import (
    check_decisions,
    ready_worker,
    write_activation_inputs,
    write_alerts,
    write_live,
    write_reference,
)
from tests.integration.worker_harness import DspProducer, OutputReader, WorkerProcess

pytestmark = pytest.mark.broker


def test_live_processing_decides_by_the_rules(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=30)
    with ready_worker(settings, tmp_path, sc) as (dsp, worker, reader):
        sent = write_live(dsp, sc)
        check_decisions(reader, sc, sent, worker)
        metrics = worker.metrics()
        assert 'poa_alerts_total{alert_code="AD1",decision="suppressed",reason="activation_window"}' in metrics
        assert "poa_decision_latency_seconds_bucket" in metrics
        assert "poa_tracked_devices 25.0" in metrics


def test_backlog_with_alerts_written_before_requests_decides_as_live(settings: Settings, tmp_path: Path) -> None:
    sc = campaign(homes=30, seed=11)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    sent = write_alerts(dsp, sc)
    dsp.flush()
    write_activation_inputs(dsp, sc)
    dsp.flush()
    worker = WorkerProcess(settings, tmp_path).start()
    reader = OutputReader(settings)
    try:
        check_decisions(reader, sc, sent, worker)
    finally:
        worker.stop()
        reader.close()
