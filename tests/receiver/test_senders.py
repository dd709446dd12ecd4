"""Senders: states, per-minute counts and the bound on how many are remembered."""

from __future__ import annotations

from receiver.senders import Senders


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_020.0  # 20 s into a minute

    def __call__(self) -> float:
        return self.now


def test_states_and_last_minute() -> None:
    """If a TCP sender goes quiet and a UDP sender stops, then they read idle and silent; counts of the last
    full minute are kept apart from the totals."""
    clock = Clock()
    senders = Senders(clock)
    senders.connected("10.0.0.1")
    senders.received("10.0.0.1", 100, 10_000)
    senders.received("10.0.0.2", 5, 500)  # UDP: no connection
    assert {s["address"]: s["state"] for s in senders.snapshot()} == {"10.0.0.1": "connected", "10.0.0.2": "sending"}
    clock.now += 60  # the next minute
    senders.received("10.0.0.1", 1, 100)
    (first, second) = senders.snapshot(lambda peer: ("web",) if peer == "10.0.0.1" else ())
    assert (first["address"], first["frames_last_minute"], first["frames"], first["machine_groups"]) == (
        "10.0.0.1", 100, 101, ["web"],
    )
    assert second["state"] == "silent"
    clock.now += 120
    senders.disconnected("10.0.0.1")
    assert [s["state"] for s in senders.snapshot()] == ["silent", "silent"]
    assert senders.snapshot()[0]["frames_last_minute"] == 0  # minutes without data count nothing


def test_idle_connection() -> None:
    """If a connection stays open without data for a minute, then its sender reads idle."""
    clock = Clock()
    senders = Senders(clock)
    senders.connected("::1")
    clock.now += 61
    assert senders.snapshot()[0]["state"] == "idle"


def test_bounded() -> None:
    """If more senders than the limit are heard, then the one silent the longest is forgotten, never a
    connected one."""
    clock = Clock()
    senders = Senders(clock, limit=2)
    senders.connected("a")
    senders.received("b", 1, 1)
    clock.now += 1
    senders.received("c", 1, 1)
    assert sorted(s["address"] for s in senders.snapshot()) == ["a", "c"]
    assert len(senders) == 2
