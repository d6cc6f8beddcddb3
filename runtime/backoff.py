"""Exponential backoff with jitter: one helper for every retry loop (stores, registry client,
Docker reconnects).

``delay(n)`` is the ceiling before the ``n``-th retry, ``initial * factor ** (n - 1)`` capped at
``maximum``; ``next()`` counts retries and returns that ceiling jittered. ``proportional``
jitter (±20 %) keeps delays near the curve, for a single client retrying a service;
``full`` jitter (uniform in ``[0, ceiling]``) spreads many writers racing for one table.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Jitter = Literal["proportional", "full"]


@dataclass(slots=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0
    jitter: Jitter = "proportional"
    retries: int = field(default=0)  # since the last reset

    def delay(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (1 for the first)."""
        return min(self.maximum, self.initial * self.factor ** max(0, retry - 1))

    def jittered(self, delay: float) -> float:
        if self.jitter == "full":
            return random.uniform(0, delay)
        return delay * random.uniform(0.8, 1.2)

    def next(self) -> float:
        self.retries += 1
        return self.jittered(self.delay(self.retries))

    def reset(self) -> None:
        self.retries = 0
