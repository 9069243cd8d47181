"""Measuring home directories: on this machine (the local spawner's homes) or from a
Prometheus metric (on Kubernetes, e.g. 2i2c's per-directory size exporter)."""

from __future__ import annotations

import json
import logging
import os
import urllib.parse

import escapism
from tornado.httpclient import HTTPRequest

from ..framework.hubapi import fetch

log = logging.getLogger("twoi2c.cost")

# seconds a query of home directory sizes may take (a large hub's query is slow)
PROMETHEUS_TIMEOUT_SECONDS = 30.0


def disk_usage(path: str) -> int:
    """Bytes a directory tree takes on disk (as `du` counts them), without following links."""
    total = 0
    for root, directories, files in os.walk(path, onerror=lambda e: None):
        for name in files + directories:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def person_of(directory_name: str) -> str:
    """The username a home directory is named after ({escaped_username})."""
    return escapism.unescape(directory_name, escape_char="-")


def measure_local(directory: str) -> dict[str, int]:
    sizes = {}
    try:
        entries = list(os.scandir(directory))
    except OSError as e:
        log.warning("Cannot read the homes in %s: %s", directory, e)
        return {}
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            sizes[person_of(entry.name)] = disk_usage(entry.path)
    return sizes


async def measure_prometheus(url: str, query: str, label: str) -> dict[str, int]:
    request = HTTPRequest(
        f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}",
        request_timeout=PROMETHEUS_TIMEOUT_SECONDS,
        connect_timeout=PROMETHEUS_TIMEOUT_SECONDS,
    )
    response = await fetch(request, what="The home directories' Prometheus query")
    body = json.loads(response.body)
    sizes = {}
    for sample in body.get("data", {}).get("result", []):
        name = sample.get("metric", {}).get(label)
        if name:
            sizes[person_of(name)] = int(float(sample["value"][1]))
    return sizes
