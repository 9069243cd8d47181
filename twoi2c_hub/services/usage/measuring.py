"""Measured use: every `interval` seconds, what each running server uses, sampled from its
processes and added to its session (`accounting.use`).

The hub tells which servers run and where (`/users?state=active` with the spawner's state,
the `admin:server_state` scope): a local server's process id. Each round reads /proc once
for all of them: every process's parent, CPU time and resident memory; a server's tree is
its process and all their descendants. Its CPU time counts the children its processes
have reaped (a finished kernel's time stays); its memory peak since the last look is
estimated from each process's own high-water mark (VmHWM) with the others' memory now:
exact for one process, close for a server and its kernel. A server with no source it can
read is "not measured", never a zero.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker
from tornado.httpclient import HTTPClientError

from ...accounting.use import Sample, add_sample, open_session_ids
from ..framework.hubapi import HubAPI
from .intake import now_ms
from .reconciler import parse_hub_time

log = logging.getLogger("twoi2c.usage")

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
Server = tuple[str, str, int]  # username, server name, the hub's start time (ms)


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


class UseSampler:
    """Samples every running server's use each `interval` seconds."""

    def __init__(self, open_db: sessionmaker, *, hub_api: HubAPI, interval: float, trees: ProcessTrees | None = None):
        self.open_db = open_db
        self.hub_api = hub_api
        self.interval = interval
        self.trees = trees or ProcessTrees()
        self.last_sampled_ms: int | None = None

    async def running_servers(self) -> dict[Server, int]:
        """Each running server the hub knows the process of -> that process id."""
        pids = {}
        async for user in self.hub_api.paged("/users", {"state": "active"}):
            for name, server in (user.get("servers") or {}).items():
                started = parse_hub_time(server.get("started"))
                pid = (server.get("state") or {}).get("pid")
                if started is not None and server.get("ready") and isinstance(pid, int) and pid > 0:
                    pids[(user["name"], name, started)] = pid
        return pids

    async def sample(self) -> int:
        """One round; how many servers were measured."""
        try:
            pids = await self.running_servers()
        except (HTTPClientError, OSError) as e:
            log.warning("Cannot read the hub's running servers to measure them (%s); will try again", e)
            return 0
        return await asyncio.to_thread(self.record, pids)

    def record(self, pids: dict[Server, int]) -> int:
        if not pids:
            return 0
        samples = self.trees.sample(pids, now_ms())
        with self.open_db() as db:
            sessions = open_session_ids(db, list(samples))
            for server, sample in samples.items():
                if server in sessions:
                    add_sample(db, sessions[server], sample)
            db.commit()
        self.last_sampled_ms = now_ms()
        return len(sessions)
