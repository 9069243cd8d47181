"""The soak mode of class_start.py (`--soak-minutes 30`): our hub for half an hour with
people coming and going, the class pattern again and again, and the memory of the hub,
the proxy and the services sampled every 5 s: after a warm-up, does it keep growing?

Reports the resident memory after the warm-up and at the end, the peak, and the slope
(least squares, MB an hour) after the warm-up and over the last half; errors; servers
started and sessions recorded (each once). Memory counts as bounded when, over the last
half, it grows by less than 1 % of the process's size an hour.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import threading
import time
from pathlib import Path

from class_start import (
    empty_results,
    hubs,
    in_client_process,
    person,
    service_processes,
    sessions_recorded,
    summary,
    wait_until_stopped,
)

from twoi2c_hub.localhub import tagged_processes


async def people_coming_and_going(hub_url: str, password: str, people: list[str], seconds: float, form) -> dict:
    """Each person arrives within the first two minutes, then again and again logs in,
    starts a server, works in it 30 s to 3 min, stops it, logs out and is away 10 s to
    1.5 min, until the time is up (a short run scales these down)."""
    out = empty_results()
    until = time.monotonic() + seconds
    hold = (min(30, seconds / 60), min(180, seconds / 10))
    away = (min(10, seconds / 180), min(90, seconds / 20))
    last_start = until - min(60, seconds / 10)

    async def comes_and_goes(name: str, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, min(120, seconds / 10)))
        while time.monotonic() < last_start:
            await person(hub_url, name, password, 0, form, out, hold=rng.uniform(*hold), think=rng.uniform(1, 4))
            await asyncio.sleep(rng.uniform(*away))

    await asyncio.gather(*(comes_and_goes(n, random.Random(i)) for i, n in enumerate(people)))
    out["phases"] = dict(out["phases"])
    return out


def rss_kib(pid: int) -> int:
    """The process's resident memory now, in KiB (/proc's VmRSS)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])


class MemoryWatch:
    """Resident memory of processes every `every` seconds, for the soak's slopes."""

    def __init__(self, pids: dict[str, list[int]], every: float = 5):
        self.pids = pids
        self.every = every
        self.began = time.monotonic()
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}

    def run(self, stop: threading.Event) -> None:
        while True:
            now = time.monotonic() - self.began
            for name, pids in self.pids.items():
                total = 0
                for pid in pids:
                    try:
                        total += rss_kib(pid)
                    except (OSError, StopIteration):  # ended, or ending
                        pass
                self.samples[name].append((now, total / 1024))
            if stop.wait(self.every):
                return

    def figures(self, warm_up: float) -> dict:
        """Per process: resident MB after the warm-up and at the end, the peak, and the
        slope (least squares, MB an hour) after the warm-up and over the last half."""
        result = {}
        for name, samples in self.samples.items():
            settled = [(t, mb) for t, mb in samples if t >= warm_up]
            if len(settled) < 4:
                continue
            half = settled[len(settled) // 2 :]
            minute = max(1, int(60 / self.every))
            result[name] = {
                "rss_after_warm_up_mb": round(statistics.fmean(mb for _, mb in settled[:minute]), 1),
                "rss_at_end_mb": round(statistics.fmean(mb for _, mb in settled[-minute:]), 1),
                "peak_rss_mb": round(max(mb for _, mb in samples), 1),
                "slope_mb_per_hour": slope(settled),
                "last_half_slope_mb_per_hour": slope(half),
                # growth that slows from quarter to quarter levels off; a leak keeps its pace
                "growth_by_quarter_mb": quarters(settled, minute),
            }
        return result


def quarters(samples: list[tuple[float, float]], minute: int) -> list[float]:
    """The change of the minute-averaged RSS over each quarter of the time after the
    warm-up (MB)."""
    minute = max(1, min(minute, len(samples) // 5))  # a short run: shorter averages
    averaged = [statistics.fmean(mb for _, mb in samples[i : i + minute]) for i in range(len(samples) - minute + 1)]
    marks = [round(q * (len(averaged) - 1) / 4) for q in range(5)]
    return [round(averaged[b] - averaged[a], 1) for a, b in zip(marks, marks[1:])]


def slope(samples: list[tuple[float, float]]) -> float:
    fit = statistics.linear_regression([t for t, _ in samples], [mb for _, mb in samples])
    return round(fit.slope * 3600, 2)


TRACER = """\
import os
if os.environ.get("TWOI2C_TRACE_MEMORY"):  # the soak's --trace-memory
    import collections, gc, json, signal, time, tracemalloc
    def _trace(*_):
        # at each signal: the live objects counted by type; with allocations traced, the
        # first signal starts tracing (after the warm-up: nothing slows the start), the
        # next ones write snapshots of what is allocated, to compare
        stem = os.path.join(os.environ["TWOI2C_TRACE_MEMORY"], f"{os.getpid()}-{time.time_ns()}")
        gc.collect()
        heap = _heap()  # before the count, whose own allocations C's heap would keep
        counts = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        with open(stem + ".objects.json", "w") as f:
            json.dump({"objects": counts, "heap": heap}, f)
        if not os.environ.get("TWOI2C_TRACE_ALLOCATIONS"):
            return
        if not tracemalloc.is_tracing():
            tracemalloc.start(4)
            return
        tracemalloc.take_snapshot().dump(stem + ".snapshot")
    def _heap():
        # where the resident memory is: Python's objects, C's heap (in use, and freed
        # but kept; SQLite's part), files mapped; the threads that may each have a heap arena
        import ctypes, sys
        class Info(ctypes.Structure):
            names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
            _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        info = libc.mallinfo2()
        try:  # SQLite's own heap (page caches, statements), part of C's
            sqlite = ctypes.CDLL("libsqlite3.so.0")
            sqlite.sqlite3_memory_used.restype = ctypes.c_int64
            sqlite_mb = sqlite.sqlite3_memory_used() / 2**20
        except (OSError, AttributeError):
            sqlite_mb = 0.0
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        kb = lambda key: int(status[key].split()[0]) / 1024
        return {
            "python_blocks": sys.getallocatedblocks(),
            "malloc_in_use_mb": (info.uordblks + info.hblkhd) / 2**20,
            "malloc_free_kept_mb": info.fordblks / 2**20,
            "sqlite_mb": sqlite_mb,
            "rss_anonymous_mb": kb("RssAnon"), "rss_file_mb": kb("RssFile"),
            "threads": int(status["Threads"]),
        }
    signal.signal(signal.SIGUSR2, _trace)
"""


def trace_memory(hub, trace: Path, allocations: bool) -> None:
    """Objects counted (and with `allocations`, Python allocations traced) in the hub and
    the services, not in the servers: a sitecustomize answering SIGUSR2, writing to
    `trace`."""
    trace.mkdir(parents=True, exist_ok=True)
    (trace / "sitecustomize.py").write_text(TRACER)
    path = os.pathsep.join(p for p in (str(trace), os.environ.get("PYTHONPATH", "")) if p)
    variables = {"TWOI2C_TRACE_MEMORY": str(trace), "PYTHONPATH": path}
    if allocations:
        variables["TWOI2C_TRACE_ALLOCATIONS"] = "1"
    hub.environment.update(variables)
    hub.extra_config += (
        f"for _service in c.JupyterHub.services:\n    _service.setdefault('environment', {{}}).update({variables!r})\n"
    )


def snapshots(processes: dict[str, list[int]]) -> None:
    for pids in processes.values():
        for pid in pids:
            os.kill(pid, signal.SIGUSR2)


def memory_growth(trace: Path, processes: dict[str, list[int]], top: int = 8) -> dict[str, dict[str, list[str]]]:
    """Per process: the types whose live objects grew most in number between the warm-up
    and the end (`objects`) and over the last half (`objects_last_half`, when counted half
    way too), the heap's figures at each count and, when traced, the Python allocations
    that grew from a minute after the warm-up to the end, most first, by line."""
    import tracemalloc

    def grown(was: dict, now: dict) -> list[str]:
        most = sorted(((now[k] - was.get(k, 0), k) for k in now), reverse=True)[:top]
        return [f"+{n} {kind} (now {now[kind]})" for n, kind in most if n > 0]

    result = {}
    for name, pids in processes.items():
        for pid in pids:
            found = {}
            counted = [json.loads(f.read_text()) for f in sorted(trace.glob(f"{pid}-*.objects.json"))]
            if len(counted) >= 2:
                found["objects"] = grown(counted[0]["objects"], counted[-1]["objects"])
                if len(counted) >= 3:
                    found["objects_last_half"] = grown(counted[-2]["objects"], counted[-1]["objects"])
                found["heap"] = {k: [round(c["heap"][k], 1) for c in counted] for k in counted[-1]["heap"]}
            taken = sorted(trace.glob(f"{pid}-*.snapshot"))
            if len(taken) >= 2:  # what grew between the first snapshot and the last, by line
                first, last = (tracemalloc.Snapshot.load(str(f)) for f in (taken[0], taken[-1]))
                stats = last.compare_to(first, "lineno")
                total = sum(s.size_diff for s in stats)
                found["allocations"] = [f"total {total / 1024:+.0f} KiB"] + [
                    f"{s.size_diff / 1024:+.0f} KiB {s.count_diff:+} blocks {s.traceback[0]}" for s in stats[:top]
                ]
            result[f"{name}:{pid}"] = found
    return result


def soak(work: Path, people: list[str], password: str, minutes: float, trace: str = "") -> dict:
    """Our hub for `minutes`, people coming and going (people_coming_and_going); the
    memory of the hub, the proxy and the services sampled all along (`trace`: "objects",
    the live objects in the hub and the services counted by type after the warm-up and at
    the end; "allocations", their Python allocations traced in between too)."""
    hub, form = hubs(work, people, password)["ours"]
    if trace:
        trace_memory(hub, work / "trace", allocations=trace == "allocations")
    hub.start(timeout=120)
    warm_up = min(300, minutes * 60 / 5)
    try:
        processes = service_processes(hub, ("usage", "cost"))
        processes["proxy"] = [
            p for p in tagged_processes(hub.tag)
            if "twoi2c_hub.proxy" in Path(f"/proc/{p}/cmdline").read_text("latin-1")
        ]  # fmt: skip
        memory = MemoryWatch(processes, every=min(5, minutes))  # a short run: more often
        traced = {k: v for k, v in processes.items() if k != "proxy"}
        end = max(warm_up + 2, minutes * 60 - 20)
        # objects counted after the warm-up, half way through what follows, and at the
        # end; allocations traced from the warm-up on, compared between a minute later
        # (or half way) and the end
        half_way = (warm_up + end) / 2
        moments = {
            "": (),
            "objects": (warm_up, half_way, end),
            "allocations": (warm_up, min(warm_up + 60, end - 1), end),
        }[trace]
        timers = [threading.Timer(at, snapshots, args=(traced,)) for at in moments]
        for timer in timers:
            timer.start()
        stop = threading.Event()
        sampler = threading.Thread(target=memory.run, args=(stop,))
        sampler.start()
        try:
            result = in_client_process(people_coming_and_going, hub.url, hub.password, people, minutes * 60, form)
        finally:
            stop.set()
            sampler.join()
        for timer in timers:
            timer.join()
        wait_until_stopped(hub, hub.tag)
        sessions = sessions_recorded(work / "usage.sqlite", len(result["started"]))
    finally:
        hub.stop()
    figures = {
        "minutes": minutes,
        "people": len(people),
        "warm_up_seconds": warm_up,
        "servers_started": len(result["started"]),
        "errors": len(result["errors"]),
        "error_examples": result["errors"][:5],
        "login": summary(result["login"]),
        "time_to_server": summary(result["server"]),
        "sessions": sessions,
        "memory": memory.figures(warm_up),
    }
    if trace:
        figures["growth_after_warm_up"] = memory_growth(work / "trace", traced)
    figures["targets_met"] = {
        "no_errors": figures["errors"] == 0,
        "every_session_recorded_once": sessions["recorded"] == figures["servers_started"]
        and sessions["duplicated"] == 0,
        "memory_bounded": all(levelling_off(m) for m in figures["memory"].values()),
    }
    if trace:  # a leak in Python code shows as live Python objects that keep growing
        figures["targets_met"]["python_objects_flat"] = python_objects_flat(figures["growth_after_warm_up"])
    return figures


def python_objects_flat(growth: dict) -> bool:
    """Every traced process ends with at most 2 % more Python memory blocks than it had
    at the count before (half way through the time after the warm-up: the last half), and
    at least one process was traced."""
    heaps = [found["heap"]["python_blocks"] for found in growth.values() if "heap" in found]
    return bool(heaps) and all(blocks[-1] <= 1.02 * blocks[-2] for blocks in heaps)


def levelling_off(memory: dict) -> bool:
    """A process's memory is bounded when, after the warm-up, it is flat (growing less
    than 1 % of its size an hour over the last half) or its growth slows down: the last
    quarter's at most three quarters of the first's. A leak keeps its pace; caches that
    fill (SQLite's page and statement caches, JupyterHub's scope caches) and the
    allocator's free lists grow ever more slowly."""
    flat = memory["last_half_slope_mb_per_hour"] <= 0.01 * memory["rss_at_end_mb"]
    first, *_, last = memory["growth_by_quarter_mb"]
    return flat or (first > 0 and last <= 0.75 * first)
