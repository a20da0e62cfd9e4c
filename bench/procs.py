"""Child processes of the benchmark (workers, loaders, producers, pass-through), always cleaned up.

Every child is registered; `Children.stop_all` runs at exit and on SIGTERM/SIGINT, so a failed or
interrupted run never leaves a worker holding a state folder or a transactional ID. Only processes this
run started are signalled, each by its own pid.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

POA_FILTER = str(Path(sys.executable).parent / "poa-filter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Children:
    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def spawn(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(list(args), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with self._lock:
            self._procs.append(proc)
        return proc

    def stop_all(self, grace: float = 15) -> None:
        with self._lock:
            procs = [p for p in self._procs if p.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def install_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop_all()
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def run_tool(
    children: Children, args: Sequence[str], log_path: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[int, float]:
    """Run a child to completion; (exit code, wall seconds). A timeout kills it and raises."""
    started = time.monotonic()
    proc = children.spawn(args, log_path, env)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise TimeoutError(f"{' '.join(args[:4])} ... did not finish within {timeout:.0f} s (log {log_path})") from None
    return code, time.monotonic() - started


def run_json_tool(
    children: Children, module: str, params: dict[str, Any], work: Path, name: str, timeout: float
) -> dict[str, Any]:
    """Run `python -m module params.json result.json` and return the result it wrote."""
    params_path, result_path = work / f"{name}.params.json", work / f"{name}.result.json"
    params_path.write_text(json.dumps(params))
    result_path.unlink(missing_ok=True)
    code, _ = run_tool(
        children,
        [sys.executable, "-m", module, str(params_path), str(result_path)],
        work / "logs" / f"{name}.log",
        timeout,
    )
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"{module} ({name}) failed with exit code {code}; see {work / 'logs' / (name + '.log')}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


class RssSampler:
    """Peak resident set size of a process, sampled in a thread (psutil), plus a coarse timeline."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.peak = 0
        self.timeline: list[tuple[float, int]] = []
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_kept = 0.0
        while not self._stop.is_set():
            try:
                rss = self._proc.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            now = time.monotonic()
            if now - last_kept >= 1.0:
                self.timeline.append((now, rss))
                last_kept = now
            self._stop.wait(self._interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        return self.peak


class Worker:
    """One `poa-filter worker` process with its metrics port, readiness probe and RSS sampler."""

    def __init__(self, children: Children, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.children = children
        self.port = free_port()
        self.env = {**env, "POA_METRICS_PORT": str(self.port), "POA_EXPLAIN_PORT": "0"}  # no explanations here
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss: RssSampler | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "Worker":
        self.started_at = time.monotonic()
        self.proc = self.children.spawn([POA_FILTER, "worker"], self.log_path, self.env)
        self.rss = RssSampler(self.proc.pid)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=1) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def wait_ready(self, timeout: float) -> float:
        """Seconds from process start to the first 200 on /ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return time.monotonic() - self.started_at
            if not self.alive():
                raise RuntimeError(
                    f"worker exited ({self.proc and self.proc.returncode}) before ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"worker not ready after {timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def stop(self, timeout: float = 60) -> float:
        """SIGTERM (graceful: finish the batch, commit state) and wait; SIGKILL after `timeout`."""
        started = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.rss is not None:
            self.rss.stop()
        return time.monotonic() - started

    def cpu_seconds(self) -> float | None:
        try:
            times = psutil.Process(self.pid).cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def worker_env(bootstrap: str, app_id: str, data_dir: Path, topics: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "POA_APP_ID": app_id, "POA_DATA_DIR": str(data_dir)})
    env.update({f"POA_TOPIC_{name.upper()}": topic for name, topic in topics.items()})
    return env
