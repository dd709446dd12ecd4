"""Senders: states, per-minute counts and the bound on how many are remembered."""

from __future__ import annotations

import pytest

import receiver.telemetry.senders as senders_module
from receiver.telemetry.events import Telemetry
from receiver.telemetry.senders import Senders


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


def test_bounded_with_every_remembered_sender_connected() -> None:
    """If the connected senders alone fill the table, then none of them is forgotten: a new UDP sender is
    kept beside them until the next one replaces it, and a sender that disconnects can be forgotten again."""
    clock = Clock()
    senders = Senders(clock, limit=3)
    for peer in ("a", "b", "c"):
        senders.connected(peer)
    senders.received("d", 1, 1)
    senders.received("e", 1, 1)
    assert sorted(s["address"] for s in senders.snapshot()) == ["a", "b", "c", "e"]
    senders.disconnected("a")
    senders.received("f", 1, 1)
    senders.received("g", 1, 1)
    assert sorted(s["address"] for s in senders.snapshot()) == ["b", "c", "f", "g"]


def test_the_one_forgotten_is_the_one_heard_first_even_if_the_clock_steps_back() -> None:
    """If the wall clock steps back between two senders, then at the limit the sender heard first is
    forgotten, not the one whose clock reading is older."""
    clock = Clock()
    senders = Senders(clock, limit=2)
    senders.received("heard-first", 1, 1)
    clock.now -= 30  # an NTP step
    senders.received("heard-second", 1, 1)
    senders.received("heard-first", 1, 1)  # heard again: now the most recent
    senders.received("new", 1, 1)
    assert sorted(s["address"] for s in senders.snapshot()) == ["heard-first", "new"]


def test_a_new_sender_at_the_limit_examines_a_bounded_number_of_senders(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the table is full, half of it connected, then adding a sender looks at a few senders, not at all
    of them (spoofed UDP sources would otherwise stall the reactor)."""
    # Skipping connected senders means reading their connection count: count those reads.
    examined = 0
    slot = senders_module._Sender.connections

    class WatchedSender(senders_module._Sender):
        __slots__ = ()

        @property  # type: ignore[misc]
        def connections(self) -> int:
            nonlocal examined
            examined += 1
            return slot.__get__(self)

        @connections.setter
        def connections(self, value: int) -> None:
            slot.__set__(self, value)

    monkeypatch.setattr(senders_module, "_Sender", WatchedSender)
    clock = Clock()
    senders = Senders(clock, limit=1000)
    for i in range(1000):
        if i % 2:
            senders.connected(f"tcp-{i}")
        else:
            senders.received(f"udp-{i}", 1, 1)
    examined = 0
    for i in range(100):
        senders.received(f"spoofed-{i}", 1, 1)
    assert len(senders) == 1000
    assert examined <= 100 * 2


def test_forgotten_senders_are_counted() -> None:
    """If senders are forgotten to stay within the limit, then the telemetry counts each one."""
    telemetry = Telemetry(clock=Clock())
    telemetry.senders.limit = 2
    for peer in ("a", "b", "c", "d", "e"):
        telemetry.senders.received(peer, 1, 1)
    assert len(telemetry.senders) == 2
    assert telemetry.value("receiver_senders_forgotten_total") == 3
