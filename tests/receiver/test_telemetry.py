"""Telemetry: rate-limited log lines, and the daemon's events that use them."""

from __future__ import annotations

import logging

import pytest

from receiver.telemetry.events import Telemetry
from receiver.telemetry.names import UdpDrop
from receiver.telemetry.throttle import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestLogThrottle:
    def test_the_first_at_once_then_once_per_interval_with_the_count(self) -> None:
        """If a happening repeats, then the first is due at once, the next ones only once the interval has
        passed, all of them counted."""
        clock = Clock()
        throttle = LogThrottle(clock, 60.0)
        assert throttle.due("k") == 1
        clock.now += 10
        assert throttle.due("k") == 0
        assert throttle.due("k", 5) == 0
        clock.now += 50
        assert throttle.due("k") == 7

    def test_keys_are_apart(self) -> None:
        """If two kinds of happening come together, then each has its own interval."""
        throttle = LogThrottle(Clock(), 60.0)
        assert throttle.due("a") == 1
        assert throttle.due("b") == 1

    def test_nothing_new_brings_out_what_is_unsaid(self) -> None:
        """If a caller polls with nothing new, then what was held back is due once the interval has passed,
        and nothing is due when nothing was held back."""
        clock = Clock()
        throttle = LogThrottle(clock, 60.0)
        assert throttle.due("k", 0) == 0
        assert throttle.due("k", 3) == 3
        assert throttle.due("k", 4) == 0
        clock.now += 59
        assert throttle.due("k", 0) == 0
        clock.now += 1
        assert throttle.due("k", 0) == 4
        clock.now += 600
        assert throttle.due("k", 0) == 0


class TestEvents:
    def test_a_repeated_drop_says_how_many_times(self, caplog: pytest.LogCaptureFixture) -> None:
        """If UDP datagrams are dropped again and again, then the log has the first line, then one with the
        count since; the counter has them all under the reason's code."""
        clock = Clock()
        telemetry = Telemetry(clock=clock, repeat_interval_seconds=60.0)
        with caplog.at_level(logging.ERROR, logger="receiver"):
            telemetry.udp_dropped("udp", UdpDrop.BACKPRESSURE, "the spool is not accepting (backpressure)", 2)
            telemetry.udp_dropped("udp", UdpDrop.BACKPRESSURE, "the spool is not accepting (backpressure)", 3)
            clock.now += 60
            telemetry.udp_dropped("udp", UdpDrop.BACKPRESSURE, "the spool is not accepting (backpressure)", 1)
        assert caplog.messages == [
            "udp: dropped UDP datagrams: the spool is not accepting (backpressure)",
            "udp: dropped UDP datagrams: the spool is not accepting (backpressure) (4 times in the last 60 s)",
        ]
        assert telemetry.value("receiver_udp_datagrams_dropped_total", listener="udp", reason="backpressure") == 6
