"""Self-protection: backpressure near the memory limit, a clean stop over it, CPU duty-cycling."""

from __future__ import annotations

from receiver.guard import ResourceGuard
from receiver.spool.gate import BackpressureGate

MIB = 2**20


class Fake:
    def __init__(self) -> None:
        self.rss = 100 * MIB
        self.cpu = 0.0
        self.now = 0.0
        self.stops: list[str] = []


def guard(fake: Fake, gate: BackpressureGate, *, memory: int = 200 * MIB, cpu_percent: float = 0.0) -> ResourceGuard:
    return ResourceGuard(
        gate, memory_limit_bytes=memory, cpu_limit_percent=cpu_percent, on_over_memory=fake.stops.append,
        clock=lambda: fake.now, rss=lambda: fake.rss, cpu=lambda: fake.cpu,
    )


def test_memory_near_then_over_the_limit() -> None:
    """If memory rises past 90% of the limit, then reading pauses until it falls below 80%; past the limit,
    the daemon is told to stop, once."""
    fake, gate = Fake(), BackpressureGate()
    g = guard(fake, gate)
    g.check()
    assert not gate.closed
    fake.rss = 185 * MIB
    g.check()
    assert gate.reasons == {"memory-limit"}
    fake.rss = 170 * MIB  # between 80% and 90%: still paused
    g.check()
    assert gate.closed
    fake.rss = 150 * MIB
    g.check()
    assert not gate.closed
    fake.rss = 250 * MIB
    g.check()
    g.check()
    assert len(fake.stops) == 1 and "over [limits] memory_limit_bytes" in fake.stops[0]


def test_cpu_over_the_limit_pauses_reading() -> None:
    """If the daemon used more CPU than the limit over the last seconds, then reading pauses; once the
    average is back under, it resumes."""
    fake, gate = Fake(), BackpressureGate()
    g = guard(fake, gate, memory=0, cpu_percent=50)
    for _ in range(3):
        fake.now += 1
        fake.cpu += 0.9  # 90% of a core
        g.check()
    assert gate.reasons == {"cpu-limit"}
    for _ in range(6):
        fake.now += 1
        fake.cpu += 0.1
        g.check()
    assert not gate.closed


def test_limits_off() -> None:
    """If both limits are 0, then nothing is ever paused or stopped."""
    fake, gate = Fake(), BackpressureGate()
    g = guard(fake, gate, memory=0)
    fake.rss = 10**12
    fake.cpu = 10**6
    g.check()
    assert not gate.closed and fake.stops == []
