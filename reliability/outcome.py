"""What a scenario found, and the registry of scenarios."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

__all__ = ["SCENARIOS", "Outcome", "Scenario", "Size", "count_keys", "scenario"]

Size = Literal["ci", "full"]
"""``ci``: small enough for ``make test`` (seconds); ``full``: the figures of docs/reliability.md (minutes)."""


@dataclasses.dataclass
class Outcome:
    """One run of one scenario. ``None`` where a count does not apply (nothing is delivered upstream)."""

    sent: int
    stored: int | None = None
    delivered: int | None = None
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    failures: list[str] = dataclasses.field(default_factory=list)
    """What the scenario expected and did not get; empty: it held."""
    notes: dict[str, object] = dataclasses.field(default_factory=dict)
    """Other figures worth printing (peak RSS, recovery time, ...)."""

    @property
    def ok(self) -> bool:
        return not self.failures

    def expect(self, condition: bool, failure: str) -> None:
        """Record ``failure`` unless ``condition`` holds (every expectation is checked, not just the first)."""
        if not condition:
            self.failures.append(failure)


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    promise: str
    """What must hold, in one sentence (printed beside the figures)."""
    run: Callable[[Size], Outcome]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, promise: str) -> Callable[[Callable[[Size], Outcome]], Callable[[Size], Outcome]]:
    """Register a scenario function ``run(size) -> Outcome`` under ``name``."""

    def register(run: Callable[[Size], Outcome]) -> Callable[[Size], Outcome]:
        if name in SCENARIOS:
            raise ValueError(f"two scenarios named {name!r}")
        SCENARIOS[name] = Scenario(name, promise, run)
        return run

    return register


def count_keys(expected: Iterable[int], seen: Iterable[int]) -> tuple[int, int, int]:
    """(lost, duplicated, unexpected) of the message keys ``seen`` against the ``expected`` ones."""
    want = set(expected)
    counts = Counter(seen)
    lost = len(want - counts.keys())
    duplicated = sum(c - 1 for k, c in counts.items() if k in want and c > 1)
    unexpected = sum(c for k, c in counts.items() if k not in want)
    return lost, duplicated, unexpected
