"""Scenarios of clocks: RFC 3164's missing year across New Year, and the wall clock jumping.

The machine's real clock is not moved (that would disturb everything else on
it): the parsers take the receive time as an argument and the spool writer
takes ``wall_clock_ns``, so both are driven here with an injected clock, the
writer through the unit tests' harness (a Twisted ``Clock``, commits run
synchronously).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import logging
import random
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from formats.rfc3164 import Rfc3164Parser
from reliability.outcome import Outcome, Size, scenario
from reliability.scenarios.ingest_support import by_size
from tests.support.spool import Harness, entry

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZONES = ("UTC", "Asia/Shanghai", "America/Los_Angeles", "Pacific/Kiritimati")
_HOUR = 3600
_DAY = 86_400


def _stamp(seconds: int, tz: _dt.tzinfo) -> bytes:
    """``Mmm dd hh:mm:ss`` (no year, day space-padded) of ``seconds`` in ``tz``, as BSD syslog writes it."""
    t = _dt.datetime.fromtimestamp(seconds, tz)
    return f"{_MONTHS[t.month - 1]} {t.day:2d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}".encode()


def _utc(text: str) -> int:
    return calendar.timegm(_dt.datetime.fromisoformat(text).utctimetuple())


def _parsed_seconds(parser: Rfc3164Parser, stamp: bytes, received: int) -> tuple[int, tuple[str, ...]]:
    record = parser.parse(b"<13>" + stamp + b" host app: clock", "192.0.2.1", received * 10**9)
    return record.time, record.flags


@scenario(
    "clock_year",
    "RFC 3164 without a year, across New Year in several zones: a message stamped Dec 31 received on "
    "Jan 1 is the old year, one stamped Jan 1 received on Dec 31 (sender clock ahead) the new year; "
    "every stamp from 3 days behind to 2 days ahead of the receive time reads back exactly",
)
def clock_year(size: Size) -> Outcome:
    """Named cases, then a seeded sweep: New Years 1971-2099, receive times +-12 h, sender offsets
    from 3 days behind to 2 days ahead (the parser reads a stamp more than 2 days ahead as last year's).
    """
    cases = by_size(size, 20_000, 400_000)
    rng = random.Random(1231)
    out = Outcome(sent=0, stored=0)
    utc = ZoneInfo("UTC")
    parser = Rfc3164Parser(default_tz=utc)
    named = [
        ("Dec 31 23:59:59 received 2027-01-01T00:00:05Z", b"Dec 31 23:59:59", "2027-01-01T00:00:05", "2026-12-31T23:59:59"),
        ("Jan  1 00:00:01 received 2026-12-31T23:59:50Z", b"Jan  1 00:00:01", "2026-12-31T23:59:50", "2027-01-01T00:00:01"),
        ("Dec 31 23:00:00 received 2028-01-01T00:30:00Z", b"Dec 31 23:00:00", "2028-01-01T00:30:00", "2027-12-31T23:00:00"),
        ("Feb 29 12:00:00 received 2028-03-01T00:00:00Z", b"Feb 29 12:00:00", "2028-03-01T00:00:00", "2028-02-29T12:00:00"),
    ]
    for label, stamp, received_at, want in named:
        got, flags = _parsed_seconds(parser, stamp, _utc(received_at))
        out.sent += 1
        out.expect(got == _utc(want) and not flags, f"{label}: read as {_dt.datetime.fromtimestamp(got, utc)} {flags}")
        out.stored = (out.stored or 0) + (got == _utc(want))
    # Feb 29 received in a year without one: what happens is reported, not promised.
    got, flags = _parsed_seconds(parser, b"Feb 29 12:00:00", _utc("2027-03-01T00:00:00"))
    out.notes["feb29_received_2027_03_01"] = f"{_dt.datetime.fromtimestamp(got, utc).isoformat()} {list(flags)}"
    wrong: list[str] = []
    for zone in _ZONES:
        tz = ZoneInfo(zone)
        zone_parser = Rfc3164Parser(default_tz=tz)
        for _ in range(cases // len(_ZONES)):
            year = rng.randrange(1971, 2100)
            new_year = int(_dt.datetime(year, 1, 1, tzinfo=tz).timestamp())
            received = new_year + rng.randrange(-12 * _HOUR, 12 * _HOUR)
            sent = received + rng.randrange(-3 * _DAY, 2 * _DAY)
            stamp = _stamp(sent, tz)
            got = zone_parser.parse(b"<13>" + stamp + b" h a: x", "192.0.2.1", received * 10**9).time
            out.sent += 1
            if _stamp(got, tz) == stamp and (got == sent or _ambiguous_local_time(sent, tz)):
                out.stored = (out.stored or 0) + 1
            elif len(wrong) < 5:
                wrong.append(f"{zone} {stamp.decode()} received {_dt.datetime.fromtimestamp(received, tz)}: "
                             f"read {_dt.datetime.fromtimestamp(got, tz)}")
    out.lost = out.sent - (out.stored or 0)
    out.notes["sweep_cases"] = cases // len(_ZONES) * len(_ZONES)
    out.expect(not wrong, f"{out.lost} stamps read wrong, e.g. {wrong}")
    return out


def _ambiguous_local_time(seconds: int, tz: _dt.tzinfo) -> bool:
    """Whether the wall-clock time of ``seconds`` in ``tz`` occurs twice (a DST fall-back hour): either reading is right."""
    t = _dt.datetime.fromtimestamp(seconds, tz).replace(tzinfo=None)
    first = t.replace(tzinfo=tz, fold=0).timestamp()
    second = t.replace(tzinfo=tz, fold=1).timestamp()
    return first != second


@scenario(
    "clock_jump",
    "the wall clock stepping back keeps the spool's order (its sequence, not receive time) and discards "
    "nothing; stepping forward within max_age_hours discards nothing; stepping past it discards the "
    "undelivered segments as too old, counted",
)
def clock_jump(size: Size) -> Outcome:
    """An injected wall clock: frames committed at T, T-1 h (a step back), T+1 h, then T+25 h (past 24 h)."""
    rounds = by_size(size, 50, 1_000)
    hour_ns = _HOUR * 10**9
    t0 = 1_798_761_600 * 10**9  # 2027-01-01T00:00:00Z
    out = Outcome(sent=0, stored=0)
    discarded_total = 0
    order_wrong = 0
    early_discards = 0
    kept_behind_newer = 0
    quiet = logging.getLogger("receiver")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a thousand "retention removed" lines say nothing the counts do not
    try:
        with tempfile.TemporaryDirectory(prefix="reliability-clock-jump-") as directory:
            for r in range(rounds):
                h = Harness(Path(directory) / f"r{r}", max_age_hours=24)
                h.writer.start()
                written: list[bytes] = []
                for step, wall in enumerate((t0, t0 - hour_ns, t0 - hour_ns // 2, t0 + hour_ns)):
                    h.wall_ns = wall
                    frames = [b"round %d step %d frame %d" % (r, step, k) for k in range(10)]
                    h.writer.append(entry(frames, at=wall), sum(map(len, frames)))
                    h.clock.advance(0.01)  # committed
                    written += frames
                out.sent += len(written)
                if h.frames() != written:
                    order_wrong += 1
                h.clock.advance(10)  # a retention pass at T + 1 h: nothing is 24 h old
                early_discards += h.store.meta.discarded_frames
                # 24 h 10 min after the segment stamped T - 1 h, but that one sits behind the one stamped T,
                # which is not yet 24 h old: retention goes in sequence order and stops there.
                h.wall_ns = t0 + 23 * hour_ns + hour_ns // 6
                h.clock.advance(10)
                kept_behind_newer += sum(1 for f in h.frames() if b" step 1 " in f)
                early_discards += h.store.meta.discarded_frames
                h.wall_ns = t0 + 26 * hour_ns  # the clock steps more than a day ahead
                h.clock.advance(10)
                discarded_total += h.telemetry.value("receiver_spool_frames_discarded_total", reason="age")
                out.stored = (out.stored or 0) + len(h.frames())
                h.writer.close()
                h.store.close()
    finally:
        quiet.setLevel(level)
    out.lost = discarded_total
    out.notes.update(rounds=rounds, discarded_as_too_old_after_the_forward_step=discarded_total,
                     past_max_age_but_kept_behind_a_newer_segment=kept_behind_newer)
    out.expect(order_wrong == 0, f"{order_wrong} rounds read back in another order than committed")
    out.expect(early_discards == 0, f"{early_discards} frames discarded before the clock passed max_age_hours")
    out.expect(discarded_total == out.sent and out.stored == 0,
               f"after the forward step {discarded_total} of {out.sent} counted as discarded, {out.stored} left")
    return out
