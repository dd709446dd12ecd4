"""Network devices' own headers and message codes, read inside RFC 3164 frames.

Cisco IOS and IOS-XE (``logging host``) send no RFC 3164 header; what follows
the PRI is the console line::

    <PRI>[COUNTER: ][ORIGIN: ][SEQUENCE: ][*|.]TIME[ ZONE]: %FACILITY-SEVERITY-MNEMONIC: TEXT

- COUNTER is the syslog message counter, SEQUENCE the number
  ``service sequence-numbers`` adds, ORIGIN the host name
  ``logging origin-id`` adds;
- ``*`` before TIME: the device's clock is not authoritative (never set, or
  not synchronised); ``.``: it was synchronised but has lost its NTP peer;
- TIME is ``Mmm dd [yyyy ]hh:mm:ss[.fff]`` (``service timestamps log
  datetime [msec] [year] [show-timezone]``) or an uptime (``hh:mm:ss``,
  ``1d02h``, ``3w2d``: ``service timestamps log uptime``), ZONE a zone name.

NX-OS writes ``<PRI>[ORIGIN]: yyyy Mmm dd hh:mm:ss[.fff][ ZONE]: %CODE: TEXT``.
ASA and FTD send an RFC 3164 header (``Mmm dd yyyy hh:mm:ss [HOST ]: %ASA-6-302013: TEXT``),
read by :mod:`formats.rfc3164`, which calls :func:`read_code` where a TAG would
start. Huawei VRP and H3C Comware put their code there too:
``%%01SHELL/5/CMDRECORD(s)[COUNT]:TEXT``; VRP may write the device's offset
right after the time, and ``DST`` after that while daylight saving time is in
effect (``Dec  6 2026 10:00:00+08:00 DST HUAWEI %%01...``):
:func:`read_time_suffix`.

An IOS or NX-OS line relayed by a syslog daemon (rsyslog's traditional
forwarding format) arrives behind the relay's own RFC 3164 header, the
device's counter standing where a TAG would be
(``<189>Dec  6 10:00:00 10.1.2.3 1234: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: ...``):
:mod:`formats.rfc3164` calls :func:`read_header` at that TAG.

Only zones that mean one thing are resolved: ``UTC``, ``GMT``, ``UT``,
``UCT``, ``Z`` and numeric offsets. A Cisco zone name is whatever the
administrator typed in ``clock timezone`` (``CET`` may be anything), so any
other name leaves the time in the parser's default zone, and the name is kept
in ``_device_timezone_``. So does Huawei's ``DST``, with or without an offset
before it: whether that offset includes the daylight saving shift is not
documented, and the shift itself is whatever ``clock daylight-saving-time``
set.

Pure functions over text, no state: :class:`formats.rfc3164.Rfc3164Parser`
turns their results into records.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import NamedTuple

__all__ = [
    "DEVICE_CLOCK_MARK",
    "DEVICE_FACILITY",
    "DEVICE_MNEMONIC",
    "DEVICE_SEQUENCE",
    "DEVICE_SEVERITY",
    "DEVICE_TIMEZONE",
    "DEVICE_UPTIME",
    "RELAY_HOSTNAME",
    "RELAY_TIMESTAMP",
    "CiscoHeader",
    "MessageCode",
    "read_code",
    "read_header",
    "read_time_suffix",
    "zone_of",
]

# Field names: none of these has a Logtail equivalent (Logtail reads such lines as plain RFC 3164).
DEVICE_SEQUENCE = "_device_sequence_"
"""The number(s) before the time, as sent; two (the message counter, then the sequence number) space-separated.

Huawei VRP: the log counter in brackets after the code (``[42]``)."""
DEVICE_CLOCK_MARK = "_device_clock_mark_"
"""``*`` (clock not authoritative) or ``.`` (NTP synchronisation lost), only when sent."""
DEVICE_TIMEZONE = "_device_timezone_"
"""The zone name after the time, as sent (Huawei: the offset, ``DST``, or both: ``+08:00 DST``)."""
DEVICE_UPTIME = "_device_uptime_"
"""The uptime a device stamped instead of a date (the record has the receive time, or a relay's time)."""
DEVICE_FACILITY = "_device_facility_"
"""The FACILITY of ``%FACILITY-SEVERITY-MNEMONIC`` (Huawei/H3C: the module)."""
DEVICE_SEVERITY = "_device_severity_"
"""The device's own severity digit in its code, 0-7."""
DEVICE_MNEMONIC = "_device_mnemonic_"
"""The MNEMONIC of the code (ASA: the message number; Huawei/H3C: the brief)."""
RELAY_TIMESTAMP = "_relay_timestamp_"
"""A relayed device line: the TIMESTAMP of the relay's RFC 3164 header, as sent."""
RELAY_HOSTNAME = "_relay_hostname_"
"""A relayed device line: the HOSTNAME of the relay's header (the device as the relay names it), as sent."""

_UTC_NAMES = frozenset(("UTC", "GMT", "UT", "UCT", "Z"))
_ZONE = r"[A-Z][A-Z0-9]{0,7}|[+-]\d\d:?\d\d"
# IOS / IOS-XE. An origin is a name starting with a letter, or an IPv4 address.
_IOS = re.compile(
    r"(?:(\d{1,10}): )?"
    r"(?:([A-Za-z][A-Za-z0-9._-]{0,254}|\d{1,3}(?:\.\d{1,3}){3}): )?"
    r"(?:(\d{1,10}): )?"
    r"([*.])?"
    r"(?:(([A-Z][a-z]{2}) {1,2}(\d{1,2}) (?:(\d{4}) )?(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?)"
    r"|(\d{1,4}:\d\d:\d\d|\d{1,4}[ywd]\d{1,2}[wdh]))"
    rf"(?: ({_ZONE}))?: "
)
_NXOS = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9._-]{0,254})?: "
    r"((\d{4}) ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?)"
    rf"(?: ({_ZONE}))?: "
)
# %FACILITY-SEVERITY-MNEMONIC: the facility may hold hyphens (IOS-XR's %PKT_INFRA-LINK-3-UPDOWN).
_CISCO_CODE = re.compile(r"%([A-Z0-9][A-Z0-9_]*(?:-[A-Z0-9_]+)*?)-([0-7])-([A-Za-z0-9_]+) ?:(?: |$)")
# Huawei VRP, H3C Comware: %%<version><MODULE>/<severity>/<BRIEF>[(<type>)][[<count>]]: the text may follow
# without a space.
_VRP_CODE = re.compile(r"%%\d\d([A-Za-z0-9_]+)/([0-7])/([A-Za-z0-9_]+)(?:\([a-z]\))?(?:\[(\d{1,10})\])?: ?")
# Huawei VRP after its time: the device's offset, written against it, and/or " DST" (daylight saving time).
_VRP_TIME_SUFFIX = re.compile(r"([+-]\d\d:\d\d)?(?: (DST))?(?= )")
_MONTHS = {
    name: i + 1
    for i, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))
}


class MessageCode(NamedTuple):
    """A device's message code: ``program`` is the code as sent (without its colon), then its parts."""

    program: str
    facility: str
    severity: str
    mnemonic: str
    end: int
    """Where the text after the code starts."""
    sequence: str | None = None
    """Huawei VRP's log counter (``[42]`` after the code), which is not part of ``program``."""


class CiscoHeader(NamedTuple):
    """What an IOS or NX-OS header holds; ``stamp`` is None when the device sent an uptime or nothing."""

    host: str | None
    sequence: str | None
    clock_mark: str | None
    stamp: str | None
    """The date-time text, the cache key of its time (with ``zone``)."""
    year: int | None
    month: int
    day: int
    hour: int
    minute: int
    second: int
    ns: int
    zone: str | None
    uptime: str | None
    end: int
    """Where the message code (or the text) starts."""


def zone_of(name: str) -> _dt.tzinfo | None:
    """The zone a name after a device's time surely means, or None when it could mean several."""
    if name in _UTC_NAMES:
        return _dt.UTC
    if name[:1] in "+-" and len(name) in (5, 6):
        hours, minutes = name[1:3], name[-2:]
        if hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60:
            offset = _dt.timedelta(hours=int(hours), minutes=int(minutes))
            return _dt.timezone(-offset if name[0] == "-" else offset)
    return None


def read_code(text: str, pos: int) -> MessageCode | None:
    """The message code starting at ``pos`` (``%LINK-3-UPDOWN: `` or ``%%01SHELL/5/CMDRECORD(s)[0]:``)."""
    if text.startswith("%%", pos):
        m = _VRP_CODE.match(text, pos)
        if m is None:
            return None
        count = m.group(4)
        program = m.group().rstrip(" ")[:-1]
        if count is not None:
            program = program[: -len(count) - 2]
            return MessageCode(program, m.group(1), m.group(2), m.group(3), m.end(), count)
    else:
        m = _CISCO_CODE.match(text, pos)
        if m is None:
            return None
        program = m.group().rstrip(" ")[:-1].rstrip(" ")
    return MessageCode(program, m.group(1), m.group(2), m.group(3), m.end())


def read_header(text: str, pos: int, *, forced: bool = False) -> CiscoHeader | None:
    """The IOS or NX-OS header starting at ``pos`` (just after the PRI), or None.

    Unless ``forced`` (the dialect is known to be Cisco), an IOS header is
    taken only when something in it is Cisco's own (a counter, origin,
    sequence number or clock mark) or a ``%CODE:`` follows it, so that an
    RFC 3164 line such as ``Oct 11 22:14:15 ABC: text`` stays what it was.
    """
    m = _IOS.match(text, pos)
    if m is not None:
        counter, host, sequence, mark, stamp, month, day, year, hour, minute, second, frac, uptime, zone = m.groups()
        end = m.end()
        if not (forced or counter or host or sequence or mark or _CISCO_CODE.match(text, end)):
            return None
        numbers = f"{counter} {sequence}" if counter and sequence else counter or sequence
        if stamp is None:
            return CiscoHeader(host, numbers, mark, None, None, 0, 0, 0, 0, 0, 0, zone, uptime, end)
        return CiscoHeader(
            host, numbers, mark, stamp, int(year) if year else None, _MONTHS.get(month, 0), int(day),
            int(hour), int(minute), int(second), int(frac.ljust(9, "0")) if frac else 0, zone, None, end,
        )
    m = _NXOS.match(text, pos)
    if m is not None:
        host, stamp, year, month, day, hour, minute, second, frac, zone = m.groups()
        return CiscoHeader(
            host, None, None, stamp, int(year), _MONTHS.get(month, 0), int(day),
            int(hour), int(minute), int(second), int(frac.ljust(9, "0")) if frac else 0, zone, None, m.end(),
        )
    return None


def read_time_suffix(text: str, pos: int) -> tuple[str, _dt.tzinfo | None, int] | None:
    """What Huawei VRP writes just after an RFC 3164 time at ``pos``: ``+08:00``, `` DST``, or both.

    Returns the zone as it is kept in ``_device_timezone_`` (``+08:00``,
    ``DST``, ``+08:00 DST``), the zone the time is read in (None: the
    parser's default zone, for ``DST`` is never guessed), and where the
    suffix ends; None when there is none. The caller takes it only on a line
    whose device code follows.
    """
    m = _VRP_TIME_SUFFIX.match(text, pos)
    if m is None or m.end() == pos:
        return None
    offset, dst = m.groups()
    if dst is None:
        return offset, zone_of(offset), m.end()
    return (dst if offset is None else f"{offset} {dst}"), None, m.end()
