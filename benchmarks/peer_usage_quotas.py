"""The budget peer for `cost_report.py`: 2i2c's jupyterhub-usage-quotas 0.2.1, its spawn-time
check (`UsageQuotaManager.enforce`) against Debian's Prometheus backfilled with the same
history as ours. How it is made to run here, and why each setting is what it is, is in
`../shared/reference/usage-quotas-peer.md`; nothing of the peer is copied here, it is
installed from PyPI into a virtualenv of its own and called.

Two halves:
- run by `cost_report.py` (our environment): `Peer.start()` finds Python 3.12 and
  `prometheus`/`promtool`, makes the peer's virtualenv (cached in the temp directory),
  writes the sessions as kube-state-metrics series (OpenMetrics), backfills them with
  promtool and starts Prometheus on loopback; `Peer.enforce(...)` runs the client below.
- `python peer_usage_quotas.py client` (the peer's environment): reads what to ask on
  stdin, times `enforce()` one person after another and 20 at once, prints JSON.
"""

from __future__ import annotations

import asyncio
import fcntl
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = "jupyterhub-usage-quotas==0.2.1"
NAMESPACE = "hub"  # the peer counts only series in its hub_namespace with a node label
METRIC = "kube_pod_container_resource_requests"


# --- the client, run with the peer's Python ------------------------------------------------


async def client() -> None:
    spec = json.load(sys.stdin)
    from jupyterhub_usage_quotas.manager import UsageQuotaManager

    # configured as its own tests do (the reference says why each value)
    manager = UsageQuotaManager(
        prometheus_url=spec["prometheus_url"],
        hub_namespace=NAMESPACE,
        prometheus_scrape_interval=60,
        prometheus_usage_metrics={"memory": f"{METRIC}{{resource='memory'}}"},
        policy=[
            {"resource": "memory", "limit": spec["limit"], "window": spec["days"], "scope": {"group": spec["groups"]}}
        ],
        scope_fallback_strategy={"intersection": "min"},
    )

    async def one(name: str, groups: list[str]) -> tuple[float, dict]:
        began = time.perf_counter()
        output = await manager.enforce(name, groups)
        return (time.perf_counter() - began) * 1000, output

    sequential, answers = [], {}
    for name, groups in spec["people"]:
        latency, output = await one(name, groups)
        sequential.append(latency)
        answers[name] = {
            "allowed": output["allow_server_launch"],
            "used_gib_hours": output["quota"]["pure_used"] / 1024**3,
        }
    concurrent = []
    people = spec["people"]
    for first in range(0, len(people), spec["at_once"]):
        batch = people[first : first + spec["at_once"]]
        concurrent.extend(latency for latency, _ in await asyncio.gather(*(one(n, g) for n, g in batch)))
    await manager.prometheus_client.close()
    print(json.dumps({"sequential_ms": sequential, "concurrent_ms": concurrent, "answers": answers}))


# --- the setup, run by cost_report.py --------------------------------------------------------


class PeerUnavailable(Exception):
    """What the peer needs and this machine lacks (the benchmark reports it and goes on)."""


class Peer:
    def __init__(self, work, now_s: float):

        self.work = Path(work)
        self.now_s = now_s
        self.prometheus = None
        self.url = None

    # -- what it needs
    @staticmethod
    def python312() -> str:

        candidates = [os.environ.get("TWOI2C_PEER_PYTHON")]
        candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python")))
        candidates += [shutil.which("python3.12")]  # a pyenv shim may be on the PATH but not work
        for candidate in candidates:
            if candidate and os.access(candidate, os.X_OK):
                probe = [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
                if subprocess.run(probe, capture_output=True).returncode == 0:
                    return candidate
        raise PeerUnavailable("no Python 3.12 (the peer does not import on 3.11); set TWOI2C_PEER_PYTHON")

    def venv(self) -> str:
        """The peer's own virtualenv, made once per machine (a cache in the temp directory)."""

        home = Path(tempfile.gettempdir()) / "twoi2c-peer-usage-quotas-0.2.1"
        python = home / "bin" / "python"
        ready = home / ".installed"
        with open(f"{home}.lock", "w") as lock:  # another run may be making it at the same time
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not ready.exists():
                made = subprocess.run(
                    [self.python312(), "-m", "venv", "--clear", str(home)], capture_output=True, text=True
                )
                if made.returncode != 0:
                    raise PeerUnavailable(f"could not make the peer's virtualenv: {made.stderr[-500:]}")
                result = subprocess.run(
                    [str(python), "-m", "pip", "install", "-q", PEER], capture_output=True, text=True
                )
                if result.returncode != 0:
                    raise PeerUnavailable(f"pip install {PEER} failed: {result.stderr[-500:]}")
                ready.touch()
        return str(python)

    @staticmethod
    def binaries() -> tuple[str, str]:

        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if not (prometheus and promtool):
            raise PeerUnavailable("no prometheus/promtool: apt-get install prometheus")
        return prometheus, promtool

    # -- the history as kube-state-metrics would have scraped it, every minute
    def write_history(self, sessions) -> int:
        """`sessions`: (id, username, memory bytes, started_ms, stopped_ms or None). One series
        per session (kube-state-metrics gives each pod its uid), a sample a minute while it ran.
        Returns the number of samples."""
        path = self.work / "history.om"
        samples = 0
        end = int(self.now_s) // 60 * 60
        with path.open("w") as out:
            out.write(f"# TYPE {METRIC} gauge\n")
            for sid, username, memory, started_ms, stopped_ms in sessions:
                labels = (
                    f'{{namespace="{NAMESPACE}",pod="jupyter-{username}",container="notebook",'
                    f'node="node-{sid % 7}",resource="memory",unit="byte",uid="{sid}"}}'
                )
                first = -(-started_ms // 60000) * 60
                last = min(end, (stopped_ms if stopped_ms is not None else end * 1000) // 1000)
                out.writelines(f"{METRIC}{labels} {memory} {t}\n" for t in range(first, last + 1, 60))
                samples += max(0, (last - first) // 60 + 1)
            out.write("# EOF\n")
        return samples

    def start(self, sessions) -> dict:
        """Backfill and start Prometheus; returns figures about the setup."""
        import requests  # ours, not the peer's: this half runs in our environment

        prometheus, promtool = self.binaries()
        figures = {"samples": self.write_history(sessions)}
        data = self.work / "tsdb"
        began = time.perf_counter()
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=54h",
             str(self.work / "history.om"), str(data)],
            check=True, capture_output=True,
        )  # fmt: skip
        figures["backfill_seconds"] = round(time.perf_counter() - began, 1)
        (self.work / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = (self.work / "prometheus.log").open("w")
        self.prometheus = subprocess.Popen(
            [prometheus, f"--config.file={self.work / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=60d", "--query.lookback-delta=1m",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.prometheus.poll() is not None:
                raise PeerUnavailable("Prometheus did not start: " + (self.work / "prometheus.log").read_text()[-1000:])
            time.sleep(0.2)
        return figures

    def rss_mb(self) -> float:
        with open(f"/proc/{self.prometheus.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def enforce(self, people, groups, limit: str, days: int, at_once: int = 20) -> dict:
        """Run the peer's check for `people` [(name, groups)], in its own environment."""

        spec = {"prometheus_url": self.url, "people": people, "groups": groups, "limit": limit, "days": days,
                "at_once": at_once}  # fmt: skip
        result = subprocess.run(
            [self.venv(), __file__, "client"], input=json.dumps(spec), capture_output=True, text=True, timeout=3600
        )
        if result.returncode != 0:
            raise PeerUnavailable(f"the peer's client failed: {result.stderr[-1500:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.terminate()
            self.prometheus.wait(30)
            self.log.close()


if __name__ == "__main__" and sys.argv[1:] == ["client"]:
    asyncio.run(client())
