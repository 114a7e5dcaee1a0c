"""Rate limits that answer 429 with Retry-After (login, ACS, TOTP; later upload, chat)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from server.middlewares import error_response

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets per key (e.g. "login:" + client address), in this process's memory.

    Several Balie processes each keep their own buckets; the limit then applies per process,
    which still bounds guessing to a small multiple. Bounded in size: the oldest keys go.
    """

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, key: str) -> int | None:
        """Take one token for `key`: None if allowed, else seconds to wait (Retry-After)."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(key, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - stamp) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            allowed = True
        else:
            self._buckets[key] = (tokens, now)
            allowed = False
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return None if allowed else max(1, math.ceil((1.0 - tokens) / self._rate))

    def refuse(self, key: str) -> web.Response | None:
        """A 429 response if `key` is over its limit, else None."""
        wait = self.check(key)
        if wait is None:
            return None
        response = error_response(429, "rate_limited", f"too many attempts; try again in {wait} s")
        response.headers["Retry-After"] = str(wait)
        return response
