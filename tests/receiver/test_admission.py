"""Who may send and how fast: source networks, token buckets, per-source rate limits."""

from __future__ import annotations

import pytest

from receiver.config.networks import SourceNetworks
from receiver.ingest import admission
from receiver.ingest.admission import SourceRateLimits, TokenBucket


class TestSourceNetworks:
    def test_addresses_in_and_out(self) -> None:
        """If networks are given, then addresses inside any of them are contained and others are not."""
        networks = SourceNetworks(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])
        assert networks.contains("10.200.3.4") and networks.contains("192.168.1.7")
        assert networks.contains("2001:db8::1")
        assert not networks.contains("192.168.1.8") and not networks.contains("11.0.0.1")
        assert not networks.contains("2001:db9::1")

    def test_ipv4_on_a_dual_stack_socket(self) -> None:
        """If an IPv4 peer arrives as ::ffff:a.b.c.d, then it is checked as IPv4."""
        assert SourceNetworks(["10.0.0.0/8"]).contains("::ffff:10.1.2.3")

    def test_not_an_address(self) -> None:
        """If the text is not an IP address, then it is not contained (and nothing raises)."""
        assert not SourceNetworks(["0.0.0.0/0"]).contains("web-1")

    def test_empty(self) -> None:
        """If no networks are given, then the set is falsy (the listener then takes anyone)."""
        assert not SourceNetworks([]) and SourceNetworks(["127.0.0.1"])


class TestTokenBucket:
    def test_debt_is_waited_out(self) -> None:
        """If more than the burst is charged, then the wait is the debt over the rate, and it refills with time."""
        bucket = TokenBucket(rate=100, burst_seconds=1, now=0.0)
        assert bucket.charge(100, now=0.0) == 0.0
        assert bucket.charge(50, now=0.0) == pytest.approx(0.5)
        assert bucket.charge(0, now=0.5) == 0.0
        assert bucket.charge(100, now=1.5) == 0.0

    def test_refill_is_capped_at_the_burst(self) -> None:
        """If a source is quiet for long, then it gets at most its burst back."""
        bucket = TokenBucket(rate=10, burst_seconds=2, now=0.0)
        assert bucket.full(now=1000.0)
        assert bucket.charge(21, now=1000.0) == pytest.approx(0.1)

    def test_try_take(self) -> None:
        """If there is not enough, then try_take takes nothing and says no."""
        bucket = TokenBucket(rate=10, burst_seconds=1, now=0.0)
        assert bucket.try_take(10, now=0.0) and not bucket.try_take(1, now=0.0)
        assert bucket.try_take(1, now=0.1)


class TestSourceRateLimits:
    def test_sources_are_limited_each_on_its_own(self) -> None:
        """If one source floods, then its wait grows and another source's does not."""
        limits = SourceRateLimits(records_per_second=1000, bytes_per_second=0, burst_seconds=1)
        assert limits.charge("10.0.0.1", 3000, 300_000, now=0.0) == pytest.approx(2.0)
        assert limits.charge("10.0.0.2", 10, 1000, now=0.0) == 0.0

    def test_the_stricter_of_records_and_bytes(self) -> None:
        """If both limits are set, then the wait is the longer of the two."""
        limits = SourceRateLimits(records_per_second=1000, bytes_per_second=10_000, burst_seconds=1)
        assert limits.charge("a", 1000, 30_000, now=0.0) == pytest.approx(2.0)

    def test_udp_admission_drops_whole_datagrams(self) -> None:
        """If a datagram does not fit in either bucket, then it is refused and nothing is taken from the other."""
        limits = SourceRateLimits(records_per_second=10, bytes_per_second=1000, burst_seconds=1)
        assert limits.admit("a", 1, 900, now=0.0)
        assert not limits.admit("a", 1, 200, now=0.0)  # bytes over: the record is given back
        assert limits.admit("a", 1, 100, now=0.0)
        admitted = sum(limits.admit("b", 1, 10, now=0.0) for _ in range(50))
        assert admitted == 10

    def test_no_limit_is_falsy_and_never_waits(self) -> None:
        """If both limits are 0, then the limits are off."""
        limits = SourceRateLimits(0, 0, 1)
        assert not limits
        assert limits.charge("a", 10**9, 10**12, now=0.0) == 0.0 and limits.admit("a", 1, 1, now=0.0)

    def test_at_most_max_sources_have_buckets_and_evictions_are_counted(self) -> None:
        """If more sources send than ``max_sources``, then the table stays at that size and every bucket
        evicted is counted."""
        evicted = []
        limits = SourceRateLimits(records_per_second=10, bytes_per_second=0, burst_seconds=1, max_sources=100,
                                  on_evicted=lambda: evicted.append(1))
        for i in range(1000):
            limits.charge(f"10.0.{i // 250}.{i % 250}", 1, 1, now=float(i))
        assert len(limits._buckets) == 100
        assert len(evicted) == 900

    def test_the_least_recently_used_bucket_is_evicted(self) -> None:
        """If the table is full, then the source used least recently loses its bucket (it starts over with
        a full burst), and a source in debt that was used since keeps its debt."""
        limits = SourceRateLimits(records_per_second=10, bytes_per_second=0, burst_seconds=1, max_sources=2)
        assert limits.charge("first", 20, 1, now=0.0) > 0
        assert limits.charge("second", 20, 1, now=0.0) > 0
        assert limits.charge("first", 0, 1, now=0.0) > 0  # used again: still in debt
        assert limits.charge("new", 1, 1, now=0.0) == 0.0
        assert list(limits._buckets) == ["first", "new"]
        assert limits.charge("first", 0, 1, now=0.0) > 0

    def test_a_new_source_at_the_limit_examines_a_bounded_number_of_buckets(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the table is full of sources in debt, then a new source looks at a few buckets, not at all
        of them (spoofed UDP sources would otherwise stall the reactor)."""
        examined = 0

        class WatchedBucket(TokenBucket):
            __slots__ = ()

            def _refill(self, now: float) -> None:  # every look at a bucket refills it first
                nonlocal examined
                examined += 1
                super()._refill(now)

        monkeypatch.setattr(admission, "TokenBucket", WatchedBucket)
        limits = SourceRateLimits(records_per_second=10, bytes_per_second=0, burst_seconds=1, max_sources=1000)
        for i in range(1000):
            limits.charge(f"in-debt-{i}", 100, 1, now=0.0)
        examined = 0
        for i in range(100):
            limits.charge(f"spoofed-{i}", 1, 1, now=0.0)
        assert len(limits._buckets) == 1000
        assert examined <= 100 * 2
