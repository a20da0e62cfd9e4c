"""Contract 6 with more than one worker: every alert exactly once, and every bad record on every input topic
dead-lettered exactly once, while a second worker joins and the first leaves under load.

Every worker reads every state partition, so every worker meets every bad state record; a worker that
joins builds its state from the topics and meets them all again. Each must still be written once.
"""

import signal
import time
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.fault_tools import StreamWriter, build_stream, check_exactly_once, metric
from tests.integration.scenario import campaign
from tests.integration.scenario_play import write_reference
from tests.integration.worker_harness import DspProducer, OutputReader, WorkerProcess, wait_until

pytestmark = pytest.mark.broker


def test_bad_records_are_dead_lettered_once_while_a_worker_joins_and_another_leaves(
    settings: Settings, tmp_path: Path
) -> None:
    sc = campaign(homes=2000, seed=29)
    dsp = DspProducer(settings)
    write_reference(dsp, sc)
    dsp.flush()
    stream = build_stream(settings.topics, sc, bad_every=150, bad_state_every=25)
    first, reader = WorkerProcess(settings, tmp_path).start(), OutputReader(settings)
    second = WorkerProcess(settings, tmp_path)  # the same POA_DATA_DIR: it claims the next free state slot
    writer = StreamWriter(settings, stream.records, seconds=30)
    try:
        first.wait_ready(120)
        writer.start()
        wait_until(lambda: metric(first, "poa_dead_letters_total") > 10, 60, "bad records dead-lettered", first)
        second.start()
        wait_until(lambda: metric(second, "poa_alerts_total") > 0, 120, "the second worker deciding alerts", second)
        time.sleep(2)
        assert first.stop(signal.SIGTERM) == 0
        writer.finish()
        check_exactly_once(reader, stream, second, timeout=240)
        assert second.alive()
        assert "revoked alert partitions" in first.log_path.read_text()  # it shared them with the second
    finally:
        second.stop()
        first.stop()
        reader.close()
