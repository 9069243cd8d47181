"""Measuring servers through the real usage service: --servers running servers on a real
hub, sampled every --interval seconds for --minutes, on loopback.

The hub is the demo community's (profiles, usage accounting with `usage.measure_interval`
= --interval, the cost service and its budget checks), its servers minimal real processes
(tiny_server.py) started through the hub's REST API as a service with admin rights would.
Once every server runs, the usage service's and the hub's CPU seconds and peak RSS are
watched for --minutes; at the end, every server's session must have been measured at
least once a round (`session_use.samples`), and the measured CPU share of the service's
whole work (sampling, reconciliation, rollups) is an upper bound of what sampling costs.
The same service with sampling off (`measure_interval: 0`) for --baseline-minutes, on the
same servers, is the baseline measured in the same run.

Prints one JSON object with `targets_met` (issue 26: sampling at most 1 % of a core, the
usage service's RSS at most 200 MB). `--servers 5 --minutes 0.5 --interval 2
--baseline-minutes 0.3` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from class_start import TINY_SERVER, Watch, service_processes, wait_until_stopped  # noqa: E402

from twoi2c_hub.accounting.db import make_engine  # noqa: E402
from twoi2c_hub.localhub import LocalHub  # noqa: E402
from twoi2c_hub.paths import demo_config  # noqa: E402


def write_config(work: Path, people: list[str], interval: float) -> Path:
    config = demo_config()
    config["auth"] = {"provider": "demo", "users": {n: {"groups": ["students"]} for n in people}}
    config["culling"] = {"enabled": False}
    config["usage"] = {"database_url": f"sqlite:///{work / 'usage.sqlite'}", "reconcile_interval": 30,
                       "measure_interval": interval}  # fmt: skip
    config["spawner"]["local"] = {"apply_memory_limit": False, "apply_cpu_limit": False}
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def start_servers(hub_url: str, token: str, people: list[str], timeout: float = 900) -> float:
    """Every person's server started through the REST API, 20 at once; seconds it took
    until all were ready."""
    began = time.monotonic()
    headers = {"Authorization": f"token {token}"}
    gate = asyncio.Semaphore(20)
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=300)) as http:

        async def start(name: str) -> None:
            async with gate:
                async with http.post(f"{hub_url}/hub/api/users/{name}/server", json={"profile": "cpu"}) as r:
                    if r.status not in (201, 202, 400):  # 400: already running
                        raise RuntimeError(f"{name}: {r.status} {await r.text()}")

        await asyncio.gather(*(start(n) for n in people))
        while time.monotonic() - began < timeout:
            ready: set[str] = set()
            while True:  # the hub gives at most 200 users a page
                params = {"state": "ready", "limit": 200, "offset": len(ready)}
                async with http.get(f"{hub_url}/hub/api/users", params=params) as r:
                    page = {u["name"] for u in await r.json()}
                ready |= page
                if len(page) < 200:
                    break
            if ready >= set(people):
                return time.monotonic() - began
            await asyncio.sleep(2)
    raise RuntimeError("not every server became ready")


async def stop_servers(hub_url: str, token: str, people: list[str]) -> None:
    headers = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        gate = asyncio.Semaphore(20)

        async def stop(name: str) -> None:
            async with gate:
                async with http.delete(f"{hub_url}/hub/api/users/{name}/server") as r:
                    await r.read()

        await asyncio.gather(*(stop(n) for n in people))


def watched(hub: LocalHub, minutes: float) -> dict:
    """The hub's and the usage service's CPU share and peak RSS over `minutes`."""
    processes = {k: v for k, v in service_processes(hub, ("usage",)).items()}
    watch = Watch(processes)
    stop = threading.Event()
    sampler = threading.Thread(target=watch.run, args=(stop,))
    began = time.monotonic()
    sampler.start()
    time.sleep(minutes * 60)
    stop.set()
    sampler.join()
    wall = time.monotonic() - began
    figures = watch.figures()
    for name in figures:
        figures[name]["cpu_share_of_a_core"] = round(figures[name]["cpu_seconds"] / wall, 4)
    return figures


def measured_sessions(work: Path, people: list[str], since_ms: int) -> dict:
    """How often each server's session was sampled (session_use.samples)."""
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{work / 'usage.sqlite'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT s.username, u.samples FROM sessions s LEFT JOIN session_use u ON u.session_id = s.id "
                 "WHERE s.started_ms >= :since"), {"since": since_ms}
        ).all()  # fmt: skip
    engine.dispose()
    samples = {name: 0 for name in people}
    for username, count in rows:
        if username in samples:
            samples[username] = max(samples[username], count or 0)
    return samples


def run(work: Path, people: list[str], interval: float, minutes: float) -> dict:
    """One hub with `interval` (0: sampling off), all servers running, watched."""
    work.mkdir(parents=True)
    token = secrets.token_hex(32)
    extra = (
        f"c.Spawner.cmd = {[sys.executable, TINY_SERVER]!r}\nc.ProfileLocalSpawner.cmd = c.Spawner.cmd\n"
        "c.JupyterHub.log_level = 'WARN'\n"
        f"c.JupyterHub.services.append({{'name': 'bench', 'api_token': {token!r}}})\n"
        "c.JupyterHub.load_roles.append({'name': 'bench', 'scopes': ['admin:users', 'admin:servers', "
        "'list:users', 'read:users'], 'services': ['bench']})\n"
    )
    hub = LocalHub(write_config(work, people, interval), work / "hub", password=secrets.token_urlsafe(12),
                   tag="sampling-" + secrets.token_hex(4), extra_config=extra)  # fmt: skip
    hub.start(timeout=120)
    try:
        started_ms = int(time.time() * 1000)
        startup = asyncio.run(start_servers(hub.url, token, people))
        figures = {"servers_ready_after_s": round(startup, 1), **watched(hub, minutes)}
        if interval:
            samples = measured_sessions(work, people, started_ms)
            rounds = minutes * 60 / interval
            figures["samples_per_server"] = {"min": min(samples.values()), "max": max(samples.values())}
            figures["expected_rounds"] = round(rounds, 1)
            # every server in (nearly) every round: a round may fall just before the watch
            figures["servers_measured_every_round"] = sum(1 for n in samples.values() if n >= int(rounds) - 1)
        asyncio.run(stop_servers(hub.url, token, people))
        wait_until_stopped(hub, hub.tag, timeout=300)
        return figures
    finally:
        hub.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--baseline-minutes", type=float, default=10, help="the same hub with sampling off")
    args = parser.parse_args(argv)
    people = [f"person-{i:04d}" for i in range(args.servers)]
    work = Path(tempfile.mkdtemp(prefix="twoi2c-sampling-"))
    sampled = run(work / "sampled", people, args.interval, args.minutes)
    baseline = run(work / "baseline", people, 0, args.baseline_minutes)
    share = sampled["usage_service"]["cpu_share_of_a_core"]
    extra = round(share - baseline["usage_service"]["cpu_share_of_a_core"], 4)
    figures = {
        "servers": args.servers, "interval_s": args.interval, "minutes": args.minutes,
        "sampled": sampled, "sampling_off": baseline,
        "usage_service_cpu_share_added_by_sampling": extra,
    }  # fmt: skip
    figures["targets_met"] = {
        "sampling_at_most_1_percent_of_a_core": extra <= 0.01,
        "usage_service_rss_at_most_200mb": sampled["usage_service"]["peak_rss_mb"] <= 200,
        "every_server_measured_every_round": sampled["servers_measured_every_round"] == args.servers,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
