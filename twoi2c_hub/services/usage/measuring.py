"""Measured use: every `interval` seconds, what each running server uses, sampled from its
processes and added to its session (`accounting.use`).

The hub tells which servers run and where (`/users?state=active` with the spawner's state,
the `admin:server_state` scope): a local server's process id, a Kubernetes server's pod.

- Local servers (`ProcessTrees`): each round reads /proc once for all of them: every
  process's parent, CPU time and resident memory; a server's tree is its process and all
  their descendants. Its CPU time counts the children its processes have reaped (a
  finished kernel's time stays); its memory peak since the last look is estimated from
  each process's own high-water mark (VmHWM) with the others' memory now: exact for one
  process, close for a server and its kernel.
- Pods (`PrometheusPods`, with `usage.prometheus_url`): the cluster's Prometheus, four
  queries a round for all pods: cAdvisor's CPU seconds and working-set memory summed over
  a pod's containers, the memory's largest value since the last look, and DCGM's GPU
  utilisation where a pod has GPUs.

A server with no source it can read is "not measured", never a zero.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy.orm import sessionmaker
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ...accounting.use import Sample, add_sample, open_session_ids
from ..framework.hubapi import HubAPI
from .intake import now_ms
from .reconciler import parse_hub_time

log = logging.getLogger("twoi2c.usage")

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
Server = tuple[str, str, int]  # username, server name, the hub's start time (ms)
Pod = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class Process:
    parent: int
    started_ticks: int  # after boot
    cpu_seconds: float  # its own and its reaped children's
    rss_bytes: int


class ProcessTrees:
    """The local servers' process trees, read from `proc` (/proc)."""

    def __init__(self, proc: Path = Path("/proc")):
        self.proc = proc
        self.boot_ms = self._boot_ms()

    def _boot_ms(self) -> int:
        for line in (self.proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) * 1000
        return 0

    def processes(self) -> dict[int, Process]:
        found = {}
        for entry in os.scandir(self.proc):
            if not entry.name.isdigit():
                continue
            try:
                text = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # ended while being read
            # after the command's name (which may hold spaces and parentheses): field 3 on
            fields = text[text.rindex(")") + 2 :].split()
            utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
            found[int(entry.name)] = Process(
                parent=int(fields[1]),
                started_ticks=int(fields[19]),
                cpu_seconds=(utime + stime + cutime + cstime) / TICKS,
                rss_bytes=int(fields[21]) * PAGE,
            )
        return found

    def high_water_bytes(self, pid: int) -> int | None:
        try:
            for line in Path(self.proc, str(pid), "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def sample(self, pids: dict[Server, int], at_ms: int) -> dict[Server, Sample]:
        """A sample of each server whose process runs and began after its session did."""
        processes = self.processes()
        children: dict[int, list[int]] = {}
        for pid, process in processes.items():
            children.setdefault(process.parent, []).append(pid)
        samples = {}
        for server, root in pids.items():
            process = processes.get(root)
            # a process older than its session is not its server (a reused process id)
            if process is None or self.boot_ms + process.started_ticks * 1000 // TICKS < server[2] - 5000:
                continue
            tree, todo = [], [root]
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo.extend(children.get(pid, ()))
            rss = sum(processes[p].rss_bytes for p in tree)
            above_now = max((self.high_water_bytes(p) or 0) - processes[p].rss_bytes for p in tree)
            samples[server] = Sample(
                at_ms=at_ms,
                cpu_seconds=sum(processes[p].cpu_seconds for p in tree),
                mem_bytes=rss,
                mem_peak_bytes=rss + max(0, above_now),
            )
        return samples


# a pod's containers (not the pause container "POD", not the pod's own cgroup, container="")
_CONTAINERS = 'container!="",container!="POD"'


class PrometheusPods:
    """The servers' pods, measured from the cluster's Prometheus at `url`."""

    def __init__(self, url: str, timeout: float = 10):
        self.url = url.rstrip("/")
        self.timeout = timeout

    async def query(self, promql: str, at_ms: int) -> dict[Pod, float]:
        """(namespace, pod) -> the value of an instant query at `at_ms`."""
        params = urlencode({"query": promql, "time": f"{at_ms / 1000:.3f}"})
        response = await AsyncHTTPClient().fetch(f"{self.url}/api/v1/query?{params}", request_timeout=self.timeout)
        answer = json.loads(response.body)
        if answer.get("status") != "success" or answer["data"]["resultType"] != "vector":
            raise ValueError(f"Prometheus answered {str(answer)[:200]}")
        return {
            (r["metric"].get("namespace", ""), r["metric"].get("pod", "")): float(r["value"][1])
            for r in answer["data"]["result"]
        }

    async def sample(self, pods: dict[Server, Pod], at_ms: int, since_s: int) -> dict[Server, Sample]:
        """A sample of each pod Prometheus has figures of; `since_s`: the seconds since the
        last look, over which the memory peak and the GPU utilisation are taken."""
        if not pods:
            return {}
        where = f'{_CONTAINERS},namespace=~"{"|".join(sorted({ns for ns, _ in pods.values()}))}"'
        cpu, memory, peak, gpu = await asyncio.gather(
            self.query(f"sum by (namespace, pod) (container_cpu_usage_seconds_total{{{where}}})", at_ms),
            self.query(f"sum by (namespace, pod) (container_memory_working_set_bytes{{{where}}})", at_ms),
            self.query(
                f"sum by (namespace, pod) (max_over_time(container_memory_working_set_bytes{{{where}}}[{since_s}s]))",
                at_ms,
            ),
            self.query(f"avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL[{since_s}s]))", at_ms),
        )
        return {
            server: Sample(
                at_ms=at_ms,
                cpu_seconds=cpu[pod],
                mem_bytes=int(memory[pod]),
                mem_peak_bytes=int(peak[pod]) if pod in peak else None,
                gpu_util=gpu[pod] / 100 if pod in gpu else None,
            )
            for server, pod in pods.items()
            if pod in cpu and pod in memory
        }


class UseSampler:
    """Samples every running server's use each `interval` seconds."""

    def __init__(
        self,
        open_db: sessionmaker,
        *,
        hub_api: HubAPI,
        interval: float,
        trees: ProcessTrees | None = None,
        prometheus: PrometheusPods | None = None,
    ):
        self.open_db = open_db
        self.hub_api = hub_api
        self.interval = interval
        self.trees = trees or ProcessTrees()
        self.prometheus = prometheus
        self.last_sampled_ms: int | None = None

    async def running_servers(self) -> tuple[dict[Server, int], dict[Server, Pod]]:
        """Each running server the hub knows the process or the pod of: local servers'
        process ids, and Kubernetes servers' pods (KubeSpawner's state)."""
        pids, pods = {}, {}
        async for user in self.hub_api.paged("/users", {"state": "active"}):
            for name, server in (user.get("servers") or {}).items():
                started = parse_hub_time(server.get("started"))
                if started is None or not server.get("ready"):
                    continue
                state = server.get("state") or {}
                key = (user["name"], name, started)
                if isinstance(state.get("pid"), int) and state["pid"] > 0:
                    pids[key] = state["pid"]
                elif isinstance(state.get("pod_name"), str) and isinstance(state.get("namespace"), str):
                    pods[key] = (state["namespace"], state["pod_name"])
        return pids, pods

    async def sample(self) -> int:
        """One round; how many servers were measured."""
        at = now_ms()
        try:
            pids, pods = await self.running_servers()
        except (HTTPClientError, OSError) as e:
            log.warning("Cannot read the hub's running servers to measure them (%s); will try again", e)
            return 0
        samples = {}
        if pods and self.prometheus is not None:
            since = round((at - self.last_sampled_ms) / 1000) if self.last_sampled_ms else round(self.interval)
            try:
                samples = await self.prometheus.sample(pods, at, max(1, since))
            except (HTTPClientError, OSError, ValueError, KeyError) as e:
                log.warning("Cannot read the servers' use from Prometheus (%s); will try again", e)
        if pids:
            samples.update(await asyncio.to_thread(self.trees.sample, pids, at))
        self.last_sampled_ms = at
        return await asyncio.to_thread(self.record, samples)

    def record(self, samples: dict[Server, Sample]) -> int:
        if not samples:
            return 0
        with self.open_db() as db:
            sessions = open_session_ids(db, list(samples))
            for server, sample in samples.items():
                if server in sessions:
                    add_sample(db, sessions[server], sample)
            db.commit()
        return len(sessions)
