"""deploy/prometheus/fetch.sh: Debian's Prometheus unpacked under .tools/, runnable here, fetched once."""

import os
import subprocess

from tests.ops.prometheus_tools import PROMETHEUS_DIR, bin_dir


def fetch(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PROMETHEUS_DIR / "fetch.sh")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_both_binaries_run_and_a_second_fetch_only_names_them() -> None:
    folder = bin_dir()
    for name in ("prometheus", "promtool"):
        version = subprocess.run([str(folder / name), "--version"], capture_output=True, text=True, timeout=30)
        assert version.returncode == 0 and version.stdout.startswith(f"{name}, version 2."), version
    again = fetch()
    assert (again.returncode, again.stdout.strip(), again.stderr) == (0, str(folder), "")


def test_a_package_older_than_required_is_refused_by_name() -> None:
    bin_dir()
    done = fetch(PROMETHEUS_MIN_VERSION="99.0")
    assert done.returncode == 1
    assert "prometheus 2." in done.stderr and "is older than 99.0" in done.stderr
