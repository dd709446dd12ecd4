"""Self-protection: backpressure near the memory limit, a clean stop over it, CPU duty-cycling."""

from __future__ import annotations

import time
from collections.abc import Callable

from receiver.service.guard import ResourceGuard
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


def test_delivery_over_its_memory_limit_is_restarted() -> None:
    """If the delivery process and its workers hold more than delivery_memory_limit_bytes, then the guard
    asks for a restart of delivery (each check while over); under it, nothing."""
    fake, gate = Fake(), BackpressureGate()
    held = [500 * MIB]
    restarts: list[str] = []
    g = ResourceGuard(
        gate, memory_limit_bytes=0, cpu_limit_percent=0, on_over_memory=fake.stops.append, clock=lambda: fake.now,
        rss=lambda: fake.rss, cpu=lambda: fake.cpu, delivery_memory_limit_bytes=1024 * MIB,
        delivery_memory=lambda: held[0], on_delivery_over_memory=restarts.append,
    )
    g.check()
    assert restarts == []
    held[0] = 1500 * MIB
    g.check()
    assert len(restarts) == 1 and "delivery_memory_limit_bytes" in restarts[0] and "nothing is lost" in restarts[0]
    assert not gate.closed and fake.stops == []


def test_delivery_memory_is_read_off_the_reactor() -> None:
    """If the guard is given a thread to read delivery's memory on, then a check starts a reading there and
    judges its answer when it comes; a check while a reading is under way starts none."""
    from twisted.internet.defer import Deferred

    fake, gate = Fake(), BackpressureGate()
    readings: list[Deferred[int]] = []
    restarts: list[str] = []

    def in_thread(read: Callable[[], int]) -> Deferred[int]:
        readings.append(Deferred())
        return readings[-1]

    g = ResourceGuard(
        gate, memory_limit_bytes=0, cpu_limit_percent=0, on_over_memory=fake.stops.append, clock=lambda: fake.now,
        rss=lambda: fake.rss, cpu=lambda: fake.cpu, delivery_memory_limit_bytes=1024 * MIB,
        delivery_memory=lambda: 0, on_delivery_over_memory=restarts.append, in_thread=in_thread,
    )
    g.check()
    g.check()
    assert len(readings) == 1 and restarts == []
    readings[0].callback(1500 * MIB)
    assert len(restarts) == 1
    g.check()
    assert len(readings) == 2
    readings[1].errback(OSError("gone"))  # logged; the next check reads again
    g.check()
    assert len(readings) == 3 and len(restarts) == 1


def test_anonymous_memory_of_a_process_tree() -> None:
    """If a process has a child, then the tree's anonymous memory counts both (and 0 for a gone pid)."""
    import os
    import subprocess
    import sys

    from receiver.service.guard import anonymous_bytes_of_tree

    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while anonymous_bytes_of_tree(os.getpid()) < anonymous_bytes_of_tree_self() + 60 * MIB:
            assert time.monotonic() < deadline, "the child's memory was not counted"
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()
    assert anonymous_bytes_of_tree(2**22 + 12345) == 0


def test_memory_a_forked_child_shares_is_counted_once() -> None:
    """If a process holds memory and forks a child that only reads it (as the forkserver's workers
    share what it loaded), then the tree counts that memory once, not once a process."""
    import os
    import signal

    from receiver.service.guard import anonymous_bytes_of_tree

    held = bytearray(os.urandom(1 << 20)) * 96  # 96 MiB, written, so resident
    before = anonymous_bytes_of_tree(os.getpid())
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only waits, holding its copy-on-write view
        os.write(ready_write, b"x")
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(ready_read, 1) == b"x"
        both = anonymous_bytes_of_tree(os.getpid())
        assert both - before < 16 * MIB, f"the shared {len(held) >> 20} MiB were counted twice"
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(ready_read)
        os.close(ready_write)


def anonymous_bytes_of_tree_self() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))


def test_anonymous_memory_is_the_kernels_rss_anon() -> None:
    """If a process maps a large file and holds some memory of its own, then only its own counts, as the
    kernel's RssAnon has it (file pages are the kernel's to take back)."""
    import subprocess
    import sys

    from receiver.service.guard import anonymous_bytes_of_tree

    script = (
        "import mmap, sys, time\n"
        "f = open(sys.executable, 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); m.read()\n"
        "b = bytearray(16 << 20)\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            with open(f"/proc/{child.pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status)
            rss_anon = int(fields["RssAnon"].split()[0]) * 1024
            assert int(fields["RssFile"].split()[0]) * 1024 > 1 * MIB  # the mapped file is resident
            assert abs(anonymous_bytes_of_tree(child.pid) - rss_anon) < 1 * MIB
        finally:
            child.kill()
