"""Every reliability scenario at the size that fits CI: a scenario that breaks its promise fails make test."""

from __future__ import annotations

import pytest

import reliability.scenarios  # noqa: F401  (registers the scenarios)
from reliability.outcome import SCENARIOS, count_keys

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_keeps_its_promise(name: str) -> None:
    """If the scenario runs at CI size, then it keeps the promise it states (its failures say which part broke)."""
    outcome = SCENARIOS[name].run("ci")
    print(f"{name}: {outcome}")
    assert outcome.ok, f"{name} ({SCENARIOS[name].promise}): " + "; ".join(outcome.failures)


def test_count_keys() -> None:
    """If keys are missing, repeated or unknown, then each is counted as such."""
    assert count_keys(range(5), [0, 1, 1, 1, 3, 9]) == (2, 2, 1)
