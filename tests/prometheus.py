"""Debian's Prometheus on loopback, holding series written here in OpenMetrics and
backfilled with promtool (as benchmarks/peer_usage_quotas.py does for the budget peer)."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests


class BackfilledPrometheus:
    def __init__(self, work: Path, openmetrics: str):
        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        assert prometheus and promtool, "make test installs Debian's prometheus (promtool with it)"
        (work / "history.om").write_text(openmetrics)
        data = work / "tsdb"
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"), str(data)],
                       check=True, capture_output=True)  # fmt: skip
        (work / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = (work / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.ready():
            assert self.process.poll() is None and time.monotonic() < deadline, (work / "prometheus.log").read_text()
            time.sleep(0.2)

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False  # not listening yet

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()
