"""Timestamps of syslog messages, read fast.

Messages in a burst share their second, so the expensive part of a timestamp
(calendar arithmetic, the zone's offset) is cached per distinct
``YYYY-MM-DDTHH:MM:SS`` text; fractions and numeric offsets are read by
position. Zones are ``tzinfo`` objects handed in by the caller: this module
never reads the zone database itself.

Classic (BSD) timestamps often carry no year; :class:`ClassicTimes` chooses
it by the year rule: the latest year that puts the time at most a tolerance
after the receive time.
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE_S",
    "DEFAULT_UNCERTAIN_YEAR_AGE_S",
    "MAX_EPOCH_SECONDS",
    "UTC",
    "ClassicTimes",
    "Rfc3339Reader",
    "epoch_seconds",
    "month_number",
    "year_of",
]

UTC = _dt.UTC
MAX_EPOCH_SECONDS = 2**32 - 1
"""Record times are whole seconds in [0, 2**32): what SLS's uint32 ``Time`` holds."""

_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CACHE_LIMIT = 4096
_MISS = object()
# "+hh:mm" / "-hh:mm" -> seconds to subtract from the wall time to get UTC.
_OFFSETS = {
    f"{sign}{h:02d}:{m:02d}": (1 if sign == "+" else -1) * (h * 3600 + m * 60)
    for sign in "+-"
    for h in range(24)
    for m in range(60)
}
# Fraction digits -> the factor that makes them nanoseconds.
_FRACTION_SCALE = tuple(10 ** (9 - n) for n in range(10))

# Lenient: 'T', 't' or a space between date and time, 1-9 fraction digits
# (more are read and dropped), an offset with or without its colon, or none.
_LENIENT = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d\d):?(\d\d))?"
)
# RFC 5424 section 6.2.3: 'T', at most 6 fraction digits, 'Z' or +hh:mm required.
_STRICT = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d\d):(\d\d))"
)
_SECOND_PREFIX = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d")

DEFAULT_FUTURE_TOLERANCE_S = 2 * 86_400
"""How far after the receive time a yearless timestamp may be and keep the later year.

Two days: a sender that writes local time without a zone, read in another
zone, is up to 26 hours off (UTC-12 to UTC+14), and its clock may be off a
little more; a longer tolerance would date a real message from just under a
year ago into next year.
"""
DEFAULT_UNCERTAIN_YEAR_AGE_S = 30 * 86_400
"""A yearless timestamp dated more than this before the receive time is flagged ``uncertain-year``.

Thirty days: longer than the outages after which senders replay queued
messages (so those are not flagged), shorter than the jump of a clock reset
to its boot default (Cisco's ``*Mar  1``), whose year is then a guess.
"""
_NEVER_NS = 1 << 80  # beyond any receive time: a bound that never expires a cache entry
_YEARS_BACK = 9  # Feb 29 may be 8 years back (2104, then 2096)


def month_number(abbreviation: str) -> int:
    """1-12 for ``Jan``..``Dec``, 0 for anything else."""
    return _MONTHS.get(abbreviation, 0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _valid_date(y: int, m: int, d: int) -> bool:
    if not 1 <= m <= 12 or d < 1:
        return False
    if m == 2 and d == 29:
        return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= _DAYS_IN_MONTH[m - 1]


def epoch_seconds(
    y: int, mo: int, d: int, h: int, mi: int, s: int, tz: _dt.tzinfo | None
) -> int | None:
    """Seconds since the epoch of a wall-clock time, or None if it is not a time.

    ``tz`` None means the fields are already UTC (an explicit offset is then
    applied by the caller, who checks the range again). A leap second
    (``:60``) reads as the next second. Times a record cannot carry (before
    1970, after 2106) are None too.
    """
    if not _valid_date(y, mo, d) or h > 23 or mi > 59 or s > 60 or not 1969 <= y <= 2106:
        return None
    if tz is None or tz is UTC:
        seconds = (_days_from_civil(y, mo, d) * 24 + h) * 3600 + mi * 60 + s
    else:
        # Wall time in a named zone: the first of two readings when clocks go back.
        leap = s == 60
        wall = _dt.datetime(y, mo, d, h, mi, 59 if leap else s, tzinfo=tz)
        seconds = int(wall.timestamp()) + leap
    return seconds if tz is None or 0 <= seconds <= MAX_EPOCH_SECONDS else None


def year_of(seconds: int, tz: _dt.tzinfo) -> int:
    """The calendar year in ``tz`` at ``seconds`` (clamped to what records can carry)."""
    seconds = min(max(seconds, 0), MAX_EPOCH_SECONDS)
    return _dt.datetime.fromtimestamp(seconds, tz).year


class Rfc3339Reader:
    """Reads RFC 3339 / ISO 8601 timestamps into (seconds, nanoseconds).

    ``default_tz`` applies to lenient timestamps without an offset. One reader
    belongs to one parser (its cache is not shared between threads).
    """

    __slots__ = ("_base", "_default_tz", "_strict", "_whole")

    def __init__(self, *, default_tz: _dt.tzinfo = UTC, strict: bool = False) -> None:
        self._default_tz = default_tz
        self._strict = strict
        # "YYYY-MM-DDTHH:MM:SS" -> seconds of that time read as UTC (the
        # offset is applied after), or None when not a valid time.
        self._base: dict[str, int | None] = {}
        # Whole timestamps without a fraction (senders at second resolution
        # repeat them): the finished result.
        self._whole: dict[str, tuple[int, int] | None] = {}

    def read(self, ts: str) -> tuple[int, int] | None:
        """(seconds, ns within the second), or None when ``ts`` is not a timestamp."""
        if self._strict:
            return self._read_regex(ts, _STRICT)
        whole = self._whole.get(ts, _MISS)
        if whole is not _MISS:
            return whole  # type: ignore[return-value]
        # Fast path: fixed positions for the usual shapes.
        n = len(ts)
        if n < 20:
            return self._read_regex(ts, _LENIENT)
        last = ts[-1]
        if last == "Z" or last == "z":
            offset = 0
            stop = n - 1
        else:
            found = _OFFSETS.get(ts[-6:])
            if found is None:
                return self._read_regex(ts, _LENIENT)
            offset = found
            stop = n - 6
        if stop == 19:
            ns = 0
        elif ts[19] == "." and 21 <= stop <= 29:
            digits = ts[20:stop]
            if not (digits.isdigit() and digits.isascii()):
                return self._read_regex(ts, _LENIENT)
            ns = int(digits) * _FRACTION_SCALE[stop - 20]
        else:
            return self._read_regex(ts, _LENIENT)
        base = self._utc_base(ts[:19])
        result = None if base is None or not 0 <= base - offset <= MAX_EPOCH_SECONDS else (base - offset, ns)
        if stop == 19:
            whole = self._whole
            if len(whole) >= _CACHE_LIMIT:
                whole.clear()
            whole[ts] = result
        return result

    def _utc_base(self, prefix: str) -> int | None:
        cache = self._base
        value = cache.get(prefix, _MISS)
        if value is not _MISS:
            return value  # type: ignore[return-value]
        value = None
        if _SECOND_PREFIX.fullmatch(prefix):
            value = epoch_seconds(
                int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10]),
                int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19]), None,
            )
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[prefix] = value
        return value

    def _read_regex(self, ts: str, pattern: re.Pattern[str]) -> tuple[int, int] | None:
        m = pattern.fullmatch(ts)
        if m is None:
            return None
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        frac = m.group(7)
        ns = int(frac.ljust(9, "0")) if frac else 0
        if m.group(8):
            seconds = epoch_seconds(y, mo, d, h, mi, s, None)
        elif m.group(9):
            seconds = epoch_seconds(y, mo, d, h, mi, s, None)
            if seconds is not None:
                offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
                seconds -= offset if m.group(9) == "+" else -offset
        else:
            seconds = epoch_seconds(y, mo, d, h, mi, s, self._default_tz)
        if seconds is None or not 0 <= seconds <= MAX_EPOCH_SECONDS:
            return None
        return seconds, ns


ClassicTime = tuple[int | None, int, int, int, int]
"""(seconds or None when not a time, ns, valid from, valid until, flag after): see :meth:`ClassicTimes.read`."""


class ClassicTimes:
    """Times of classic (BSD) timestamps, whose year may be missing.

    **The year rule.** Without a year, the time gets the latest year that
    puts it at most ``future_tolerance_s`` after the receive time (to the
    nanosecond): a syslog time is almost never in the future, while a device
    may replay, or report with a wrong clock, times long past. So
    ``Dec 31 23:59:59`` received on 1 January is the old year, ``Jan  1
    00:00:05`` received on 31 December 23:59:58 the new one (5 seconds ahead),
    ``May  1`` received in December this year's May, and ``Feb 29`` the latest
    leap year that fits. A time so chosen more than ``uncertain_year_age_s``
    before the receive time is flagged: its year is a guess.

    Results are cached by the caller's key (the timestamp's text, and its
    zone when that can vary) with the receive times for which they hold:
    a yearless result holds while the receive time stays in
    [time - tolerance, next candidate time - tolerance), so a hit is one
    lookup and two comparisons, and a burst of equal stamps costs one
    calendar computation whatever the clock does. One instance belongs to one
    parser (not shared between threads).
    """

    __slots__ = ("_cache", "_default_tz", "_seconds", "_tolerance_ns", "_uncertain_ns")

    def __init__(
        self,
        *,
        default_tz: _dt.tzinfo = UTC,
        future_tolerance_s: int = DEFAULT_FUTURE_TOLERANCE_S,
        uncertain_year_age_s: int = DEFAULT_UNCERTAIN_YEAR_AGE_S,
    ) -> None:
        # A tolerance of a year or more would make every date "this year or the next": no rule at all.
        if not 0 <= future_tolerance_s < 300 * 86_400:
            raise ValueError(f"future_tolerance_s must be 0 to 300 days in seconds, not {future_tolerance_s!r}")
        if uncertain_year_age_s < 0:
            raise ValueError(f"uncertain_year_age_s must be 0 or more, not {uncertain_year_age_s!r}")
        self._default_tz = default_tz
        self._tolerance_ns = future_tolerance_s * 1_000_000_000
        self._uncertain_ns = uncertain_year_age_s * 1_000_000_000
        self._cache: dict[str, ClassicTime] = {}
        # The year rule by whole second: stamps with a fraction (Cisco's msec) differ line by line, but
        # every bound of a result moves with the fraction, so one whole-second result serves them all.
        self._seconds: dict[tuple[int, int, int, int, int, _dt.tzinfo], ClassicTime] = {}

    @property
    def default_tz(self) -> _dt.tzinfo:
        return self._default_tz

    def cached(self, key: str, receive_time_ns: int) -> ClassicTime | None:
        """The result for ``key`` if one is cached that holds at ``receive_time_ns``."""
        found = self._cache.get(key)
        if found is not None and found[2] <= receive_time_ns < found[3]:
            return found
        return None

    def read(
        self,
        key: str,
        receive_time_ns: int,
        year: int | None,
        month: int,
        day: int,
        hour: int,
        minute: int,
        second: int,
        ns: int,
        tz: _dt.tzinfo | None = None,
    ) -> ClassicTime:
        """The time of these fields (``year`` None: by the year rule), cached under ``key``.

        Returns ``(seconds, ns, valid_from, valid_until, flag_after)``:
        ``seconds`` is None when the fields are not a time a record can
        carry; the result holds for receive times in [valid_from,
        valid_until); a receive time after ``flag_after`` makes the year
        uncertain. ``tz`` (default: the default zone) is the zone of the wall time.
        """
        zone = self._default_tz if tz is None else tz
        if year is not None:
            result: ClassicTime = (
                epoch_seconds(year, month, day, hour, minute, second, zone), ns, -_NEVER_NS, _NEVER_NS, _NEVER_NS,
            )
        else:
            result = self._by_year_rule(receive_time_ns, month, day, hour, minute, second, ns, zone)
        cache = self._cache
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = result
        return result

    def _by_year_rule(
        self, receive_time_ns: int, month: int, day: int, hour: int, minute: int, second: int, ns: int,
        zone: _dt.tzinfo,
    ) -> ClassicTime:
        # Every comparison of the rule is (time + ns) against (receive time + tolerance): the answer
        # for a fraction ns at receive time r is the whole second's answer at r - ns, moved by ns.
        key = (month, day, hour, minute, second, zone)
        whole = self._seconds.get(key)
        at = receive_time_ns - ns
        if whole is None or not whole[2] <= at < whole[3]:
            whole = self._whole_second_rule(at, month, day, hour, minute, second, zone)
            if len(self._seconds) >= _CACHE_LIMIT:
                self._seconds.clear()
            self._seconds[key] = whole
        if not ns:
            return whole
        seconds, _, valid_from, valid_until, flag_after = whole
        return (seconds, ns, _moved(valid_from, ns), _moved(valid_until, ns), _moved(flag_after, ns))

    def _whole_second_rule(
        self, receive_time_ns: int, month: int, day: int, hour: int, minute: int, second: int, zone: _dt.tzinfo,
    ) -> ClassicTime:
        """The year rule for a stamp of whole seconds (no fraction) received at ``receive_time_ns``."""
        tolerance = self._tolerance_ns
        latest = receive_time_ns + tolerance  # the latest time the rule allows
        top = year_of(latest // 1_000_000_000, zone)  # any later year is after `latest`
        chosen = None
        after = None  # the earliest candidate time after `latest`
        for y in range(top, top - _YEARS_BACK, -1):
            seconds = epoch_seconds(y, month, day, hour, minute, second, zone)
            if seconds is None:
                continue  # not a date that year (Feb 29), or out of range
            t = seconds * 1_000_000_000
            if t <= latest:
                chosen = seconds
                break
            after = t
        if after is None:
            for y in range(top + 1, top + _YEARS_BACK):
                seconds = epoch_seconds(y, month, day, hour, minute, second, zone)
                if seconds is not None:
                    after = seconds * 1_000_000_000
                    break
        valid_until = _NEVER_NS if after is None else after - tolerance
        if chosen is None:
            # Not a date in any year, or only before 1970: earlier receive times change nothing.
            return (None, 0, -_NEVER_NS, valid_until, _NEVER_NS)
        t = chosen * 1_000_000_000
        return (chosen, 0, t - tolerance, valid_until, t + self._uncertain_ns)


def _moved(bound: int, ns: int) -> int:
    """A bound of a whole second's result, for the same stamp ``ns`` later (a never-bound stays one)."""
    return bound if bound in (_NEVER_NS, -_NEVER_NS) else bound + ns
