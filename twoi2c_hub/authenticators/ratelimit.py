"""A failed-login limiter that cannot be sidestepped and cannot grow without bound.

- The client's address is the peer's, unless the peer is a configured proxy: only then
  is `X-Forwarded-For` / `X-Real-Ip` read (the right-most address not itself a trusted
  proxy). With no proxies configured, forwarding headers are ignored.
- Failures are counted per address and per username, and against a hub-wide budget:
  once the hub has seen `global_max_failures` failures in the window, every guess waits.
- A username is only limited for addresses that failed for it: someone guessing at a
  name does not lock out the person using it from their own address.
- Memory is bounded: at most `max_tracked` keys; the oldest are forgotten first.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass


def _networks(proxies: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def client_address(peer: str, headers, trusted_proxies: Iterable[str]) -> str:
    """The address a request came from: the peer, or what trusted proxies say it is."""
    networks = _networks(trusted_proxies)

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not networks or not trusted(peer):
        return peer
    forwarded = [a.strip() for a in (headers.get("X-Forwarded-For") or "").split(",") if a.strip()]
    if not forwarded and headers.get("X-Real-Ip"):
        forwarded = [headers.get("X-Real-Ip").strip()]
    for address in reversed(forwarded):
        if not trusted(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return peer  # a malformed header: count the proxy itself
    return peer


@dataclass
class Refusal:
    """Too many failures: wait `retry_after` seconds."""

    retry_after: int
    key: str


class FailureLimiter:
    """Counts failures per key within a sliding window, with a hub-wide budget."""

    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        global_max_failures: int,
        max_tracked: int = 10_000,
        clock=None,
    ):
        self.max_failures = max_failures
        self.window = window
        self.global_max_failures = global_max_failures
        self.max_tracked = max_tracked
        self.clock = clock or (lambda: time.monotonic())
        self._failures: OrderedDict[str, deque] = OrderedDict()
        self._global: deque = deque()

    def _recent(self, attempts: deque, now: float) -> deque:
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        return attempts

    def _wait(self, attempts: deque, now: float) -> int:
        return int(attempts[0] + self.window - now) + 1

    def keys(self, address: str, username: str) -> list[str]:
        keys = [f"address:{address}"]
        if username:
            # a name is limited per address, so guessing at it elsewhere locks nobody out
            keys.append(f"user:{username}@{address}")
        return keys

    def check(self, address: str, username: str) -> Refusal | None:
        """A refusal if this address, this name from this address, or the hub as a whole
        has failed too often lately; else None."""
        now = self.clock()
        if len(self._recent(self._global, now)) >= self.global_max_failures:
            return Refusal(self._wait(self._global, now), "hub")
        for key in self.keys(address, username):
            attempts = self._failures.get(key)
            if attempts is not None and len(self._recent(attempts, now)) >= self.max_failures:
                return Refusal(self._wait(attempts, now), key)
        return None

    def failed(self, address: str, username: str) -> None:
        now = self.clock()
        self._global.append(now)
        # the global budget's own memory is bounded by its limit
        while len(self._global) > self.global_max_failures:
            self._global.popleft()
        for key in self.keys(address, username):
            attempts = self._failures.pop(key, None) or deque()
            self._recent(attempts, now).append(now)
            while len(attempts) > self.max_failures:
                attempts.popleft()
            self._failures[key] = attempts  # most recently failed last
        while len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)

    def tracked(self) -> int:
        return len(self._failures)
