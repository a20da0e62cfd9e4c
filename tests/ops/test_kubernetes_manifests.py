"""The Kubernetes example (deploy/kubernetes): valid against the Kubernetes API schemas, and holding what the
worker needs there: secrets only as read-only files, probes that never restart a worker for rebuilding its
state, a disruption budget over its own pods, a non-root read-only container with a volume for its state,
and time enough to finish a transaction on SIGTERM.

The schemas are those kubernetes-validate ships (generated from each Kubernetes release's OpenAPI); strict
mode rejects any field the API does not have, so a misspelt field fails here rather than in a cluster.
"""

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.kafka.clients import TRANSACTIONAL_PRODUCER_TUNING

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "poa-filter.yaml"
DOCUMENTS: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]
# The newest Kubernetes release kubernetes-validate has schemas for, and an older one still in wide use.
KUBERNETES_VERSIONS = ("1.37", "1.30")
REBUILD_S = 60  # a worker that lost its state folder is ready again within a minute (README figures)
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|AUTH|KEY", re.IGNORECASE)
QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>m|[KMGT]i|[kMGT])?")
UNITS = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def one(kind: str, **match: Any) -> dict[str, Any]:
    found = [d for d in DOCUMENTS if d["kind"] == kind and all(d["spec"].get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one {kind} {match or ''}, found {len(found)}"
    return found[0]


STATEFUL_SET = one("StatefulSet")
POD = STATEFUL_SET["spec"]["template"]
WORKER = next(c for c in POD["spec"]["containers"] if c["name"] == "worker")
ENV = {e["name"]: e for e in WORKER["env"]}
VOLUMES = {v["name"]: v for v in POD["spec"]["volumes"]}
MOUNTS = {m["mountPath"]: m for m in WORKER["volumeMounts"]}


def quantity(text: str) -> float:
    """A Kubernetes quantity (512Mi, 1Gi, 500m, 2) as a number of bytes or cores."""
    match = QUANTITY.fullmatch(text)
    assert match is not None, f"not a Kubernetes quantity: {text!r}"
    return float(match["number"]) * UNITS.get(match["unit"] or "", 1)


def secret_file(variable: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The mount, the volume and the file name behind an environment variable that names a file."""
    path = Path(ENV[variable]["value"])
    mount = MOUNTS.get(str(path.parent))
    assert mount is not None, f"${variable}={path}: nothing is mounted at {path.parent}"
    return mount, VOLUMES[mount["name"]], path.name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_object_is_valid_in_strict_mode(document: dict[str, Any], version: str) -> None:
    # validate() itself: unlike the command line, it raises for a kind it has no schema for
    assert kubernetes_validate.validate(document, version, strict=True) == version


def test_strict_validation_rejects_a_field_the_api_does_not_have() -> None:
    misspelt = copy.deepcopy(STATEFUL_SET)
    misspelt["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[0], strict=True)


def test_no_secret_value_is_written_in_the_manifests() -> None:
    assert not [d for d in DOCUMENTS if d["kind"] in ("Secret", "ConfigMap")], "secrets are made by the operator"
    for name, entry in ENV.items():
        assert "valueFrom" not in entry, f"{name}: a secret reaches the worker as a file, never in its environment"
        if SECRET_WORDS.search(name):
            assert name.endswith("_FILE"), f"{name} looks like a secret in an environment variable"
            assert "secret" in secret_file(name)[1], f"{name} names a file that is not on a secret volume"


@pytest.mark.parametrize(
    ("variable", "secret", "key"),
    [
        ("KAFKA_CLIENT_CONFIG", "poa-filter-kafka-client", "client.properties"),
        ("POA_SCHEMA_REGISTRY_AUTH_FILE", "poa-filter-schema-registry", "auth"),
    ],
)
def test_client_configuration_and_registry_credentials_are_read_only_secret_files(
    variable: str, secret: str, key: str
) -> None:
    mount, volume, file_name = secret_file(variable)
    assert mount.get("readOnly") is True
    assert volume["secret"]["secretName"] == secret
    assert {"key": key, "path": file_name} in volume["secret"]["items"]


def test_tls_certificates_come_from_a_secret_mounted_where_the_client_configuration_names_them() -> None:
    tls = MOUNTS["/etc/poa-filter/tls"]
    assert tls.get("readOnly") is True and VOLUMES[tls["name"]]["secret"]["secretName"] == "poa-filter-kafka-tls"
    header = MANIFEST.read_text()
    for key in ("ca.crt", "tls.crt", "tls.key"):
        assert f"=/etc/poa-filter/tls/{key}" in header, f"the example client.properties should point at {key}"


def test_secret_files_are_readable_by_owner_and_group_only_and_never_writable() -> None:
    secrets = [v for v in VOLUMES.values() if "secret" in v]
    assert len(secrets) == 3
    for volume in secrets:
        mode = volume["secret"]["defaultMode"]
        assert mode & 0o444 and not mode & 0o337, f"{volume['name']}: mode {mode:o}"


def test_readiness_asks_ready_and_liveness_never_does() -> None:
    port = WORKER["ports"][0]
    assert port == {"name": "metrics", "containerPort": int(ENV["POA_METRICS_PORT"]["value"])}
    assert WORKER["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    for probe in ("livenessProbe", "startupProbe"):
        # /ready answers 503 during a rebuild: a liveness probe on it would restart the worker in a loop
        assert WORKER[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe


def test_a_worker_is_given_time_to_rebuild_its_state_and_to_finish_a_transaction() -> None:
    startup = WORKER["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * REBUILD_S
    liveness = WORKER["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= REBUILD_S
    transaction_s = TRANSACTIONAL_PRODUCER_TUNING["transaction.timeout.ms"] / 1000
    assert POD["spec"]["terminationGracePeriodSeconds"] >= transaction_s + 15


def test_disruption_budget_and_services_select_the_workers() -> None:
    labels = POD["metadata"]["labels"]
    assert STATEFUL_SET["spec"]["selector"]["matchLabels"].items() <= labels.items()
    budget = one("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # an unready worker never blocks a drain
    headless = one("Service", clusterIP="None")
    assert STATEFUL_SET["spec"]["serviceName"] == headless["metadata"]["name"]
    services = [d for d in DOCUMENTS if d["kind"] == "Service"]
    assert len(services) == 2
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    (scraped,) = [s for s in services if s["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"]
    annotations = scraped["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        ENV["POA_METRICS_PORT"]["value"],
        "/metrics",
    )


def test_the_worker_runs_as_non_root_on_a_read_only_root_with_its_state_on_a_persistent_volume() -> None:
    pod, container = POD["spec"]["securityContext"], WORKER["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"]["drop"] == ["ALL"]
    assert POD["spec"]["automountServiceAccountToken"] is False
    state = MOUNTS[ENV["POA_DATA_DIR"]["value"]]
    claims = {c["metadata"]["name"] for c in STATEFUL_SET["spec"]["volumeClaimTemplates"]}
    assert state["name"] in claims and not state.get("readOnly")


def test_resources_fit_the_measured_footprint() -> None:
    requests, limits = WORKER["resources"]["requests"], WORKER["resources"]["limits"]
    measured_rss = 369e6  # peak RSS with 1.5 M tracked devices and 3.3 M inventory rows (README)
    assert quantity(requests["memory"]) >= measured_rss
    assert quantity(limits["memory"]) >= 2 * measured_rss
    assert 1 <= quantity(requests["cpu"]) <= quantity(limits["cpu"]) <= 2
