"""Contract 7, secured clusters: a missing permission is reported by name on /ready and in the log; the worker
keeps running, loses no alert and doubles none, and resumes by itself once the ACL is granted back.

One ACL of the documented minimum is taken away from the running worker while a live scenario flows: read on
a state topic, write on an output topic, write on its transactional IDs, read on its group; and, before it
starts, describe on the state reader's group and on an input topic, and create on the held-AD1 topic.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.scenario import campaign
from tests.integration.scenario_play import check_decisions, write_live, write_reference
from tests.integration.secured.secure_broker import SecureBroker, secure_kafka_fixture  # noqa: F401 - a fixture
from tests.integration.secured.test_secured_worker import (  # noqa: F401 - `app` is a fixture
    app,
    ready_text,
    secured_worker,
    worker_acls,
)
from tests.integration.worker_harness import DspProducer, OutputReader, wait_until

pytestmark = pytest.mark.secured


@dataclass(frozen=True)
class Revoked:
    """One ACL binding of the worker's minimum, and what the worker must say while it is missing."""

    acl: list[str]  # operation and resource, as AclCommand takes them
    reported: str  # on /ready and in the log
    blocks_outputs: bool  # nothing can be committed while it is missing
    before_start: bool = False  # taken away before the worker starts (else once it is ready)


def revoked(case: str, settings: Settings) -> Revoked:
    t, app_id = settings.topics, settings.app_id
    return {
        "output-topic-write": Revoked(
            ["--operation", "Write", "--topic", t.dno_alerts],
            f"missing permission: TOPIC_AUTHORIZATION_FAILED on topic {t.dno_alerts} (grant Write)", True),
        "group-read": Revoked(
            ["--operation", "Read", "--group", app_id],
            f"missing permission: GROUP_AUTHORIZATION_FAILED on group {app_id} (grant Read)", True),
        "transactional-id-write": Revoked(
            ["--operation", "Write", "--transactional-id", app_id, "--resource-pattern-type", "prefixed"],
            "missing permission: TRANSACTIONAL_ID_AUTHORIZATION_FAILED on transactional ID", True),
        "state-topic-read": Revoked(
            ["--operation", "Read", "--topic", t.service_requests],
            f"missing permission: TOPIC_AUTHORIZATION_FAILED on topic {t.service_requests} (grant Read)", False),
        # The state reader's group is only looked up (FindCoordinator): its error has no topic or offset.
        "state-reader-group-describe": Revoked(
            ["--operation", "Describe", "--group", f"{app_id}.state-reader"],
            f"missing permission: GROUP_AUTHORIZATION_FAILED on group {app_id}.state-reader (grant Describe)",
            False, before_start=True),
        # A listing of all topics leaves out those the worker may not Describe: it must not wait for them silently.
        "input-topic-describe": Revoked(
            ["--operation", "Read", "--operation", "Describe", "--topic", t.tracked_devices],
            f"missing permission: TOPIC_AUTHORIZATION_FAILED on topic {t.tracked_devices} (grant Describe)",
            True, before_start=True),
        # The held-AD1 topic is the worker's own: it creates it at start, like an output the DSP did not create.
        "held-topic-create": Revoked(
            ["--operation", "Create", "--topic", f"{app_id}.held-ad1s"],
            f"missing permission: TOPIC_AUTHORIZATION_FAILED on topic {app_id}.held-ad1s (grant Create, or have "
            "the DSP create it)", True, before_start=True),
    }[case]  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["output-topic-write", "group-read", "transactional-id-write", "state-topic-read", "state-reader-group-describe",
     "input-topic-describe", "held-topic-create"],
)
def test_a_revoked_acl_is_named_and_nothing_is_lost_once_granted_back(
    secure_kafka: SecureBroker, app: Settings, tmp_path: Path, case: str  # noqa: F811 - the fixture
) -> None:
    began = time.monotonic()
    for args in worker_acls("User:worker", app):
        secure_kafka.acls(*args)
    missing = revoked(case, app)
    sc = campaign(homes=30, seed=7)
    dsp = DspProducer(app)
    write_reference(dsp, sc)
    dsp.flush()
    # AD1s wait for the state topics as long as it takes here, so that decisions equal the rules' once the
    # permission is back (with the default hold they would be forwarded, as rule 8 says, and counted apart).
    config = secure_kafka.client_config("worker")
    worker = secured_worker(app, secure_kafka, tmp_path, config, mtls=False)
    worker.env["POA_MAX_HOLD_SECONDS"] = "600"
    revoke = ["--remove", "--force", "--allow-principal", "User:worker", *missing.acl]
    if missing.before_start:
        secure_kafka.acls(*revoke)
    worker.start()
    reader = OutputReader(app)
    try:
        if not missing.before_start:
            worker.wait_ready(120)
            secure_kafka.acls(*revoke)
        sent = write_live(dsp, sc)
        wait_until(lambda: missing.reported in ready_text(worker), 90, f"/ready to name {missing.reported}", worker)
        time.sleep(3)
        assert worker.alive() and not worker.ready()
        if missing.blocks_outputs:
            assert reader.poll(1).alert_outputs == 0, "an alert was output without its transaction"
        secure_kafka.acls("--add", "--allow-principal", "User:worker", *missing.acl)
        check_decisions(reader, sc, sent, worker)
        wait_until(worker.ready, 90, "/ready to clear", worker)
        assert ready_text(worker).startswith("ready\n")
        assert worker.starts == 1 and worker.alive()
    finally:
        worker.stop()
        reader.close()
    log = worker.log_path.read_text()
    assert any(missing.reported in line and " ERROR " in line for line in log.splitlines()), log[-3000:]
    print(f"{case}: {time.monotonic() - began:.0f}s")

