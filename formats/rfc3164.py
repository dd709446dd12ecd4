"""RFC 3164 ("BSD") syslog messages, read as leniently as real devices need.

    [<PRI>][TIMESTAMP SP [HOSTNAME SP]][TAG[\\[PID\\]][:] SP]CONTENT

- PRI is optional; without one priority, facility and severity are -1 (never
  0, "kernel emergency").
- TIMESTAMP is ``Mmm dd hh:mm:ss`` (day space- or zero-padded, optional
  fraction), the same with a year (``Mmm dd yyyy hh:mm:ss`` as Cisco writes,
  or ``Mmm dd hh:mm:ss yyyy``), or ISO 8601 with or without an offset (rsyslog's
  RSYSLOG_ForwardFormat, loggen). Without a year, the year is the latest
  that puts the time at most ``future_tolerance_s`` (default two days) after
  the receive time (:class:`formats._timestamps.ClassicTimes`): ``Dec 31
  23:59:59`` received on 1 January is the old year, ``May  1`` received in
  December this year's May. A time so dated more than
  ``uncertain_year_age_s`` (default 30 days) before the receive time is
  flagged ``uncertain-year``. Without an offset the time is wall-clock time in
  ``default_tz``.
- HOSTNAME is only looked for after a timestamp, and only when the next word
  is not itself a TAG (``name:`` or ``name[pid]``), so ``Oct 11 22:14:15
  su: ...`` has no hostname and program ``su``. Without one, ``_hostname_``
  is the peer address.
- Cisco's colon after the timestamp (IOS) or after the hostname (ASA,
  ``fw01 : %ASA-6-302013: ...``) is skipped.
- Device dialects (``dialect``, default ``auto``; :mod:`formats.cisco`): a
  Cisco IOS or NX-OS header after the PRI (``<189>1234: *Mar  1
  18:46:11.123: %SYS-5-CONFIG_I: ...``) gives the time, host and ``_device_``
  fields; a message code where the TAG would be (``%ASA-6-302013:``,
  ``%%01SHELL/5/CMDRECORD(s):``) is the program and is split into
  ``_device_facility_``, ``_device_severity_`` and ``_device_mnemonic_``, the
  text after it the content. An IOS line relayed behind a syslog daemon's
  header (``<189>Dec  6 10:00:00 10.1.2.3 1234: *Mar  1 ...``: the counter as
  the TAG) is read as the direct line, the relay's time standing in where
  that line would take the receive time; Huawei's offset after the time
  (``10:00:00+08:00``) is applied, its ``DST`` kept in ``_device_timezone_``.
  ``none`` reads such lines as plain RFC 3164; ``cisco`` takes any IOS-shaped
  header, even without a mark of Cisco's own.
- TAG is ``name:``, ``name[pid]:`` or ``name[pid]``; a lone ``-`` (rsyslog's
  rendering of an absent APP-NAME) is an empty program. A word without a colon
  or a pid is content, not a TAG. CONTENT starts after exactly one space.
- What cannot be read is kept: a timestamp that is not a time in
  ``_raw_timestamp_`` (flag ``bad-timestamp``, receive time), a PRI over 191
  in ``_raw_pri_`` (flag ``bad-pri``); a malformed PRI stays in the text.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Literal, NamedTuple

from formats._timestamps import (
    DEFAULT_FUTURE_TOLERANCE_S,
    DEFAULT_UNCERTAIN_YEAR_AGE_S,
    UTC,
    ClassicTime,
    ClassicTimes,
    Rfc3339Reader,
    month_number,
)
from formats.cisco import (
    DEVICE_CLOCK_MARK,
    DEVICE_FACILITY,
    DEVICE_MNEMONIC,
    DEVICE_SEQUENCE,
    DEVICE_SEVERITY,
    DEVICE_TIMEZONE,
    DEVICE_UPTIME,
    RELAY_HOSTNAME,
    RELAY_TIMESTAMP,
    CiscoHeader,
    MessageCode,
    read_code,
    read_header,
    read_time_suffix,
    zone_of,
)
from formats.framing import message_bytes
from formats.logtail_fields import PROCESS_ID, RAW_PRI, RAW_TIMESTAMP, SYSLOG_KEYS, raw_key_table
from formats.record import (
    FLAG_BAD_PRI,
    FLAG_BAD_TIMESTAMP,
    FLAG_INVALID_UTF8,
    FLAG_UNCERTAIN_YEAR,
    Record,
)
from formats.rfc5424 import PRI_STRINGS

__all__ = ["DIALECTS", "Dialect", "Rfc3164Parser", "looks_like_rfc3164_timestamp"]

Dialect = Literal["auto", "cisco", "none"]
DIALECTS: tuple[Dialect, ...] = ("auto", "cisco", "none")

_UNKNOWN_PRI = ("-1", "-1", "-1")
_NO_TAGS: dict[str, str] = {}  # shared; records' tags are replaced, never mutated
_KEYS_WITH_PID = (*SYSLOG_KEYS, PROCESS_ID)
_WITH_RAW = raw_key_table((SYSLOG_KEYS, _KEYS_WITH_PID))
_BOM = "\ufeff"
# Records of one shape share one keys tuple (the SLS encoder reuses a layout
# while the keys are the same object); device fields make many shapes.
_LAYOUTS: dict[tuple[str, ...], tuple[str, ...]] = {}

# "Mmm dd hh:mm:ss", optionally ".fff", optionally a year before or after the time.
_CLASSIC = re.compile(
    r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (?:(\d{4}) )?(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(?: (\d{4})(?= |$))?"
)
# The usual shape, read in one match: "<PRI>Mmm dd hh:mm:ss host tag[pid]: ".
# Anything else (and a host word that is really a TAG) takes the general path.
_USUAL = re.compile(
    r"<(\d{1,3})>([A-Z][a-z]{2} [ 0-3]\d \d\d:\d\d:\d\d) "
    r"((?=[:.]*[A-Za-z0-9])[A-Za-z0-9:][A-Za-z0-9._:%-]{0,254}) "
    r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,128})\])?: "
)
_ISO_START = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d")
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,128})\])?(:)?(?= |$)")
# At least one letter or digit, so a lone ":" is never a hostname.
_HOSTNAME_PATTERN = r"(?=[:.]*[A-Za-z0-9])[A-Za-z0-9:][A-Za-z0-9._:%-]{0,254}"
_HOSTNAME = re.compile(_HOSTNAME_PATTERN)
# After Huawei's zone suffix: " HOSTNAME " (ASA's " : " allowed), then a device code.
_HOSTNAME_BEFORE_CODE = re.compile(rf" ({_HOSTNAME_PATTERN}) (?:: )?(?=%)")


class _Relay(NamedTuple):
    """The RFC 3164 header a relay put before a device's own: its time stands in where the device gave none."""

    stamp: str
    host: str | None
    seconds: int
    ns: int
    flags: tuple[str, ...]
    raw: tuple[tuple[str, str], ...]


def looks_like_rfc3164_timestamp(head: bytes) -> bool:
    """Whether a frame without PRI starts with a timestamp (for auto-detection)."""
    if len(head) >= 15 and head[3:4] == b" " and month_number(head[:3].decode("latin-1")):
        return True
    return bool(_ISO_START.match(head[:11].decode("latin-1")))


class Rfc3164Parser:
    """Parses RFC 3164 frames; settings fixed at construction, :meth:`parse` never raises."""

    __slots__ = ("_dialect", "_iso", "_times")

    def __init__(
        self,
        *,
        default_tz: _dt.tzinfo = UTC,
        future_tolerance_s: int = DEFAULT_FUTURE_TOLERANCE_S,
        uncertain_year_age_s: int = DEFAULT_UNCERTAIN_YEAR_AGE_S,
        dialect: Dialect = "auto",
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
        self._dialect = dialect
        self._iso = Rfc3339Reader(default_tz=default_tz)
        self._times = ClassicTimes(
            default_tz=default_tz, future_tolerance_s=future_tolerance_s, uncertain_year_age_s=uncertain_year_age_s
        )

    def parse(self, frame: bytes, peer: str, receive_time_ns: int) -> Record:
        """One frame into a record."""
        if frame[-1:] in (b"\0", b"\r"):
            frame = message_bytes(frame)
        try:
            text = frame.decode()
            flags: tuple[str, ...] = ()
        except UnicodeDecodeError:
            text = frame.decode("utf-8", "replace")
            flags = (FLAG_INVALID_UTF8,)

        usual = _USUAL.match(text)
        if usual is not None:
            pri_text, stamp, host, program, pid = usual.groups()
            pri = int(pri_text)
            # A device's code where the TAG would be ("%ASA-6-..."), or a relayed Cisco line's counter ("1234"):
            # the general path reads them. One comparison sends both there ('%' and the digits sort before
            # '9'), with the rare TAG that starts with other punctuation, which the general path reads alike.
            if pri < 192 and host[-1] != ":" and month_number(stamp[:3]) and (program[0] > "9" or self._dialect == "none"):
                when = self._classic_time(stamp, receive_time_ns)
                if when is not None and when[0] is not None:
                    seconds, ns, flag_after = when[0], when[1], when[4]
                    if receive_time_ns > flag_after:
                        flags = (*flags, FLAG_UNCERTAIN_YEAR)
                    content = text[usual.end() :]
                    if content[:1] == _BOM:
                        content = content[1:]
                    priority, facility, severity = PRI_STRINGS[pri]
                    values = [program, priority, facility, severity, str(seconds * 1_000_000_000 + ns), host, peer, content]
                    if pid:
                        values.append(pid)
                        return Record(seconds, ns, _KEYS_WITH_PID, values, peer, _NO_TAGS, flags)
                    return Record(seconds, ns, SYSLOG_KEYS, values, peer, _NO_TAGS, flags)
        return self._parse_general(text, flags, peer, receive_time_ns)

    def _parse_general(self, text: str, flags: tuple[str, ...], peer: str, receive_time_ns: int) -> Record:

        # PRI
        pos = 0
        pri_strings = _UNKNOWN_PRI
        raw: tuple[tuple[str, str], ...] = ()  # (field, text as sent) where a stand-in replaced it
        if text[:1] == "<":
            gt = text.find(">", 1, 5)
            pri_text = text[1:gt]
            if gt > 1 and pri_text.isdigit() and pri_text.isascii():
                pri = int(pri_text)
                if pri < 192:
                    pri_strings = PRI_STRINGS[pri]
                else:
                    flags = (*flags, FLAG_BAD_PRI)
                    raw = ((RAW_PRI, pri_text),)
                pos = gt + 1
            else:
                flags = (*flags, FLAG_BAD_PRI)

        dialects = self._dialect != "none"
        if dialects:
            header = read_header(text, pos, forced=self._dialect == "cisco")
            if header is not None:
                return self._device_record(text, flags, pri_strings, raw, header, peer, receive_time_ns)
        pri_flags, pri_raw = flags, raw

        # TIMESTAMP
        when: tuple[int | None, int] | ClassicTime | None = None
        has_timestamp = False
        ts_start = pos
        zoned: tuple[str, _dt.tzinfo | None, str, MessageCode] | None = None  # Huawei's zone, host and code
        c = text[pos : pos + 1]
        if "A" <= c <= "Z":
            m = _CLASSIC.match(text, pos)
            if m is not None and month_number(m.group(1)):
                has_timestamp = True
                pos = m.end()
                after = text[pos : pos + 1]
                if dialects and (after == "+" or after == "-" or (after == " " and text.startswith("DST ", pos + 1))):
                    zoned = _zoned_device_line(text, pos)
                if zoned is None or zoned[1] is None:
                    when = self._classic_time(m.group(), receive_time_ns, m)
                else:
                    when = self._zoned_classic_time(m, receive_time_ns, zoned[0], zoned[1])
                if when is not None and receive_time_ns > when[4]:
                    flags = (*flags, FLAG_UNCERTAIN_YEAR)
        elif "0" <= c <= "9" and _ISO_START.match(text, pos):
            space = text.find(" ", pos)
            end = space if space >= 0 else len(text)
            has_timestamp = True
            when = self._iso.read(text[pos:end])
            pos = end
        ts_end = pos
        if when is None or when[0] is None:
            if has_timestamp:
                flags = (*flags, FLAG_BAD_TIMESTAMP)
                raw = (*raw, (RAW_TIMESTAMP, text[ts_start:pos]))
            seconds, ns = divmod(receive_time_ns, 1_000_000_000)
        else:
            seconds, ns = when[0], when[1]
        if has_timestamp:
            if text[pos : pos + 1] == ":":  # Cisco IOS: "Mar  1 2019 10:11:12: %LINK-..."
                pos += 1
            if text[pos : pos + 1] == " ":
                pos += 1

        # HOSTNAME and TAG
        host = peer
        program = ""
        pid = None
        device: tuple[tuple[str, str], ...] = ()
        code: MessageCode | None = None
        if zoned is not None:  # Huawei: "+08:00 HUAWEI %%01...", read whole by _zoned_device_line
            zone, _, host, code = zoned
            device = ((DEVICE_TIMEZONE, zone),)
            tag = None
        else:
            named_host = None
            tag = _TAG.match(text, pos)
            if has_timestamp and (tag is None or not (tag.group(2) is not None or tag.group(3))):
                h = _HOSTNAME.match(text, pos)
                if h is not None and text[h.end() : h.end() + 1] in ("", " "):
                    host = named_host = h.group()
                    pos = min(h.end() + 1, len(text))
                    if text.startswith(": ", pos):  # Cisco ASA: "fw01 : %ASA-6-302013: ..."
                        pos += 2
                    tag = _TAG.match(text, pos)
            if dialects:
                if text[pos : pos + 1] == "%":
                    code = read_code(text, pos)
                elif (
                    has_timestamp and tag is not None and tag.group(3) and tag.group(2) is None
                    and tag.group(1).isdecimal()
                ):  # a relayed Cisco line: "relay-header 1234: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: ..."
                    header = read_header(text, pos, forced=self._dialect == "cisco")
                    if header is not None:
                        relay = _Relay(
                            text[ts_start:ts_end], named_host, seconds, ns,
                            flags[len(pri_flags) :], raw[len(pri_raw) :],
                        )
                        return self._device_record(
                            text, pri_flags, pri_strings, pri_raw, header, peer, receive_time_ns, relay
                        )
        if code is not None:
            program = code.program
            pos = code.end
            device = (*device, *_code_fields(code))
        elif tag is not None:
            name, tag_pid, colon = tag.groups()
            if tag_pid is not None or colon:
                program = name
                pid = tag_pid
                pos = tag.end() + 1
            elif name == "-":
                pos = tag.end() + 1
        content = text[pos:]
        if content[:1] == _BOM:
            content = content[1:]

        values = [
            program,
            pri_strings[0],
            pri_strings[1],
            pri_strings[2],
            str(seconds * 1_000_000_000 + ns),
            host,
            peer,
            content,
        ]
        keys: tuple[str, ...] = SYSLOG_KEYS
        if pid:
            values.append(pid)
            keys = _KEYS_WITH_PID
        if device:
            return _with_fields(seconds, ns, keys, values, (*device, *raw), peer, flags)
        if raw:
            keys = _WITH_RAW[keys, tuple(key for key, _ in raw)]
            values += [value for _, value in raw]
        return Record(seconds, ns, keys, values, peer, _NO_TAGS, flags)

    def _device_record(
        self,
        text: str,
        flags: tuple[str, ...],
        pri_strings: tuple[str, str, str],
        raw: tuple[tuple[str, str], ...],
        header: CiscoHeader,
        peer: str,
        receive_time_ns: int,
        relay: _Relay | None = None,
    ) -> Record:
        """The record of a line with a Cisco IOS or NX-OS header (:func:`formats.cisco.read_header`).

        The device's date times the record. Where it gave none (an uptime) or
        an unreadable one, the receive time stands in, or for a ``relay``ed
        line the relay's time: the time the line reached its first syslog
        daemon, as the receive time is for a direct one.
        """
        device: list[tuple[str, str]] = []
        if header.sequence:
            device.append((DEVICE_SEQUENCE, header.sequence))
        if header.clock_mark:
            device.append((DEVICE_CLOCK_MARK, header.clock_mark))
        if header.zone:
            device.append((DEVICE_TIMEZONE, header.zone))
        if header.uptime:
            device.append((DEVICE_UPTIME, header.uptime))
        if relay is None:
            seconds, ns = divmod(receive_time_ns, 1_000_000_000)
            stand_in_flags: tuple[str, ...] = ()
            stand_in_raw: tuple[tuple[str, str], ...] = ()
        else:
            seconds, ns, stand_in_flags, stand_in_raw = relay.seconds, relay.ns, relay.flags, relay.raw
        if header.stamp is not None:
            zone = header.zone
            key = header.stamp if zone is None else f"{header.stamp} {zone}"
            times = self._times
            when = times.cached(key, receive_time_ns) or times.read(
                key, receive_time_ns, header.year, header.month, header.day, header.hour, header.minute,
                header.second, header.ns, None if zone is None else zone_of(zone),
            )
            if when[0] is None:
                # The stand-in's own flags hold for the time it gives; its unreadable stamp is the relay's,
                # kept in _relay_timestamp_, while _raw_timestamp_ keeps the device's.
                flags = (*flags, FLAG_BAD_TIMESTAMP, *(f for f in stand_in_flags if f != FLAG_BAD_TIMESTAMP))
                raw = (*raw, (RAW_TIMESTAMP, header.stamp))
            else:
                seconds, ns = when[0], when[1]
                if receive_time_ns > when[4]:
                    flags = (*flags, FLAG_UNCERTAIN_YEAR)
        else:
            flags = (*flags, *stand_in_flags)
            raw = (*raw, *stand_in_raw)
        pos = header.end
        program = ""
        code = read_code(text, pos)
        if code is not None:
            program = code.program
            pos = code.end
            device += _code_fields(code)
        host = header.host
        if relay is not None:
            device.append((RELAY_TIMESTAMP, relay.stamp))
            if relay.host is not None:
                device.append((RELAY_HOSTNAME, relay.host))
                host = host or relay.host
        content = text[pos:]
        values = [
            program, *pri_strings, str(seconds * 1_000_000_000 + ns), host or peer, peer, content,
        ]
        return _with_fields(seconds, ns, SYSLOG_KEYS, values, (*device, *raw), peer, flags)

    def _classic_time(self, key: str, receive_time_ns: int, m: re.Match[str] | None = None) -> ClassicTime | None:
        """The time of a classic timestamp ``key`` (its match, if at hand); None if it is not one."""
        times = self._times
        found = times.cached(key, receive_time_ns)
        if found is not None:
            return found
        if m is None:
            m = _CLASSIC.fullmatch(key)
            if m is None:
                return None
        month_name, d, year_before, h, mi, s, frac, year_after = m.groups()
        year = year_before or year_after
        return times.read(
            key, receive_time_ns, int(year) if year else None, month_number(month_name),
            int(d), int(h), int(mi), int(s), int(frac.ljust(9, "0")) if frac else 0,
        )

    def _zoned_classic_time(self, m: re.Match[str], receive_time_ns: int, zone: str, tz: _dt.tzinfo) -> ClassicTime:
        """The time of the classic timestamp matched by ``m``, a wall time in ``tz`` (sent as ``zone``)."""
        key = f"{m.group()} {zone}"
        times = self._times
        found = times.cached(key, receive_time_ns)
        if found is not None:
            return found
        month_name, d, year_before, h, mi, s, frac, year_after = m.groups()
        year = year_before or year_after
        return times.read(
            key, receive_time_ns, int(year) if year else None, month_number(month_name),
            int(d), int(h), int(mi), int(s), int(frac.ljust(9, "0")) if frac else 0, tz,
        )


def _code_fields(code: MessageCode) -> tuple[tuple[str, str], ...]:
    """The fields of a device's message code: its parts, then Huawei's counter when sent."""
    parts = ((DEVICE_FACILITY, code.facility), (DEVICE_SEVERITY, code.severity), (DEVICE_MNEMONIC, code.mnemonic))
    return parts if code.sequence is None else (*parts, (DEVICE_SEQUENCE, code.sequence))


def _zoned_device_line(text: str, pos: int) -> tuple[str, _dt.tzinfo | None, str, MessageCode] | None:
    """Huawei's zone after the time at ``pos``, the hostname and the code, when all three are there.

    Only a line with a device code is so read: ``auto`` changes nothing else.
    """
    suffix = read_time_suffix(text, pos)
    if suffix is None:
        return None
    zone, tz, end = suffix
    h = _HOSTNAME_BEFORE_CODE.match(text, end)
    if h is None:
        return None
    code = read_code(text, h.end())
    return None if code is None else (zone, tz, h.group(1), code)


def _with_fields(
    seconds: int,
    ns: int,
    keys: tuple[str, ...],
    values: list[str],
    more: tuple[tuple[str, str], ...],
    peer: str,
    flags: tuple[str, ...],
) -> Record:
    """A record of ``keys`` and ``values`` followed by the ``more`` fields, its keys tuple shared by its shape."""
    all_keys = keys + tuple(key for key, _ in more)
    shared = _LAYOUTS.get(all_keys)
    if shared is None:
        shared = _LAYOUTS.setdefault(all_keys, all_keys)
    values += [value for _, value in more]
    return Record(seconds, ns, shared, values, peer, _NO_TAGS, flags)
