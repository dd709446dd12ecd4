"""RFC 5424 syslog messages.

    <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]

Fields use Logtail's names (see :mod:`formats.logtail_fields`). NILVALUEs: an
absent PROCID, MSGID or STRUCTURED-DATA leaves its field out, as Logtail does;
an absent APP-NAME gives an empty ``_program_``; an absent HOSTNAME falls back
to the peer address; an absent TIMESTAMP gives the receive time. The time
keeps its fraction to the nanosecond and its offset.

Lenient (the default) reads what real senders write: missing trailing header
fields, timestamps without offset (read in ``default_tz``) or with up to nine
fraction digits, MSG without STRUCTURED-DATA, over-long names, PRI with
leading zeros. Malformed STRUCTURED-DATA is kept in ``_content_`` and flagged
``bad-structured-data``; an unreadable TIMESTAMP is kept in ``_raw_timestamp_``
(flag ``bad-timestamp``) and a PRI over 191 in ``_raw_pri_`` (flag
``bad-pri``). Strict enforces the RFC's grammar and limits and turns any
violation into a parse-error record.

``_structured_data_`` is JSON: ``{"SD-ID": {"PARAM-NAME": "value"}}`` in the
sender's order, values unescaped (``\\"`` ``\\\\`` ``\\]``); a PARAM-NAME
repeated inside one element gives a list of its values.
"""

from __future__ import annotations

import datetime as _dt
import re
from json.encoder import encode_basestring as _json_str

from formats._timestamps import UTC, Rfc3339Reader
from formats.framing import message_bytes
from formats.logtail_fields import (
    MESSAGE_ID,
    PROCESS_ID,
    RAW_PRI,
    RAW_TIMESTAMP,
    STRUCTURED_DATA,
    SYSLOG_KEYS,
    raw_key_table,
    raw_record,
)
from formats.record import (
    FLAG_BAD_PRI,
    FLAG_BAD_STRUCTURED_DATA,
    FLAG_BAD_TIMESTAMP,
    FLAG_INVALID_UTF8,
    FLAG_PARSE_ERROR,
    Record,
)

__all__ = ["PRI_STRINGS", "Rfc5424Parser", "parse_structured_data"]

# priority -> its (priority, facility, severity) strings, built once.
PRI_STRINGS: tuple[tuple[str, str, str], ...] = tuple(
    (str(p), str(p >> 3), str(p & 7)) for p in range(192)
)
_UNKNOWN_PRI = ("-1", "-1", "-1")
# "<PRI>1" -> its strings: the usual heads, read with one lookup.
_USUAL_HEADS = {f"<{p}>1": PRI_STRINGS[p] for p in range(192)}
_NO_TAGS: dict[str, str] = {}  # shared; records' tags are replaced, never mutated
_BOM = "\ufeff"
_SD_CACHE_LIMIT = 1024
_Params = dict[str, "str | list[str]"]
_CONTROL = re.compile(r"[\x00-\x1f]")  # JSON must escape these

# SD-NAME: PRINTUSASCII except '=', SP, ']' and '"'. A PARAM-VALUE is quoted;
# inside it '"', '\' and ']' are escaped with '\'.
_SD_NAME = r'[!#-<>-\\^-~]+'
_SD_PARAM = rf' +({_SD_NAME})="((?:[^"\\]|\\.)*)"'
_SD_ALL = re.compile(rf"(?:\[{_SD_NAME}(?:{_SD_PARAM})* *\])+", re.DOTALL)
_SD_ELEMENT = re.compile(rf"\[({_SD_NAME})((?:{_SD_PARAM})*) *\]", re.DOTALL)
_SD_PARAMS = re.compile(_SD_PARAM, re.DOTALL)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
# Strict: the RFC's lengths and a single SP between parameters.
_STRICT_SD_NAME = r'[!#-<>-\\^-~]{1,32}'
_STRICT_SD_ALL = re.compile(
    rf'(?:\[{_STRICT_SD_NAME}(?: {_STRICT_SD_NAME}="(?:[^"\\]|\\.)*")*\])+', re.DOTALL
)
_PRINTUSASCII = re.compile(r"[!-~]+")
# (has SD, has MSGID, has PROCID) -> the record's keys; NIL ones are left out.
_KEYS = {
    (sd, msgid, procid): SYSLOG_KEYS
    + ((STRUCTURED_DATA,) if sd else ())
    + ((MESSAGE_ID,) if msgid else ())
    + ((PROCESS_ID,) if procid else ())
    for sd in (False, True)
    for msgid in (False, True)
    for procid in (False, True)
}
_WITH_RAW = raw_key_table(_KEYS.values())
_STRICT_HEADER_LIMITS = ((2, "HOSTNAME", 255), (3, "APP-NAME", 48), (4, "PROCID", 128), (5, "MSGID", 32))


def parse_structured_data(sd: str) -> str:
    """The JSON of well-formed STRUCTURED-DATA text (one or more elements)."""
    return _json_of(_elements_plain(sd) if "\\" not in sd else _elements_escaped(sd))


def _skeleton(shape: tuple[str, ...], pattern: re.Pattern[str]) -> list[str] | bool:
    """The JSON around the values of SD of this shape.

    False when no SD has this shape; True when SD of this shape is valid but
    needs the general path (a repeated PARAM-NAME, whose values become a list).
    """
    sample = '""'.join(shape)
    if not pattern.fullmatch(sample):
        return False
    out = []
    for sd_id, params in _elements_plain(sample):
        body = []
        for name, value in params.items():
            if not isinstance(value, str):
                return True
            body.append(_json_str(name) + ':"\x00"')
        out.append(_json_str(sd_id) + ":{" + ",".join(body) + "}")
    return ("{" + ",".join(out) + "}").split("\x00")


def _json_of(elements: list[tuple[str, _Params]]) -> str:
    out = []
    for sd_id, params in elements:
        body = []
        for name, value in params.items():
            body.append(
                _json_str(name) + ":"
                + (_json_str(value) if isinstance(value, str) else "[" + ",".join(map(_json_str, value)) + "]")
            )
        out.append(_json_str(sd_id) + ":{" + ",".join(body) + "}")
    return "{" + ",".join(out) + "}"


def _add_param(params: _Params, name: str, value: str) -> None:
    prior = params.get(name)
    if prior is None:
        params[name] = value
    elif isinstance(prior, list):
        prior.append(value)
    else:
        params[name] = [prior, value]


def _elements_plain(sd: str) -> list[tuple[str, _Params]]:
    """Elements of valid SD without escapes: values hold no '"', so split on it.

    The pieces alternate: structure ('[id name=', ' name=', '][id name=',
    ']'), value, structure, value, ..., structure.
    """
    pieces = sd.split('"')
    elements: list[tuple[str, _Params]] = []
    params: _Params = {}
    last = len(pieces) - 1
    for i in range(0, last, 2):
        structure = pieces[i]
        if "[" in structure:
            chunks = structure.split("[")
            for empty in chunks[1:-1]:  # elements without parameters: "origin]"
                elements.append((empty.rstrip("] "), {}))
            sd_id, _, name = chunks[-1].partition(" ")
            params = {}
            elements.append((sd_id, params))
        else:
            name = structure
        _add_param(params, name.strip(" ")[:-1], pieces[i + 1])
    for empty in pieces[last].split("[")[1:]:
        elements.append((empty.rstrip("] "), {}))
    return elements


def _elements_escaped(sd: str) -> list[tuple[str, _Params]]:
    elements: list[tuple[str, _Params]] = []
    for element in _SD_ELEMENT.finditer(sd):
        params: _Params = {}
        for name, value in _SD_PARAMS.findall(element.group(2)):
            if "\\" in value:
                value = _SD_UNESCAPE.sub(r"\1", value)
            _add_param(params, name, value)
        elements.append((element.group(1), params))
    return elements


class Rfc5424Parser:
    """Parses RFC 5424 frames; settings fixed at construction, :meth:`parse` never raises."""

    __slots__ = ("_sd_cache", "_sd_pattern", "_sd_shapes", "_strict", "_times")

    def __init__(self, *, strict: bool = False, default_tz: _dt.tzinfo = UTC) -> None:
        self._strict = strict
        self._times = Rfc3339Reader(default_tz=default_tz, strict=strict)
        self._sd_cache: dict[str, str] = {}
        self._sd_shapes: dict[tuple[str, ...], list[str] | bool] = {}
        self._sd_pattern = _STRICT_SD_ALL if strict else _SD_ALL

    @property
    def strict(self) -> bool:
        return self._strict

    @property
    def times(self) -> Rfc3339Reader:
        """This parser's timestamp reader (formats.rfc5424_columns reads with it too)."""
        return self._times

    def _sd_json(self, sd: str) -> str | None:
        """The JSON of candidate STRUCTURED-DATA ``sd``, or None when it is not valid SD.

        Exact repeats (logger's timeQuality) are one lookup. SD without
        escapes is valid or not by its shape alone (values hold no '"'), so
        shapes are checked once and their JSON skeleton kept: senders repeat
        shapes while values change.
        """
        cache = self._sd_cache
        found = cache.get(sd)
        if found is not None:
            return found
        json: str | None = None
        pieces = sd.split('"')
        # An odd count of quotes cannot be SD; its shape would pair values with the wrong slots.
        if "\\" not in sd and len(pieces) % 2 == 1 and (sd.isprintable() or _CONTROL.search(sd) is None):
            skeleton = self.sd_skeleton(tuple(pieces[::2]))
            if skeleton is False:
                return None
            if skeleton is not True:
                parts = [""] * (2 * len(skeleton) - 1)
                parts[::2] = skeleton
                parts[1::2] = pieces[1::2]
                json = "".join(parts)
        if json is None:
            if not self._sd_pattern.fullmatch(sd):
                return None
            json = parse_structured_data(sd)
        if len(cache) >= _SD_CACHE_LIMIT:
            cache.clear()
        cache[sd] = json
        return json

    def sd_skeleton(self, shape: tuple[str, ...]) -> list[str] | bool:
        """The JSON around the values of SD of ``shape`` (see :func:`_skeleton`) by this parser's grammar, cached."""
        shapes = self._sd_shapes
        skeleton = shapes.get(shape)
        if skeleton is None:
            skeleton = _skeleton(shape, self._sd_pattern)
            if len(shapes) >= _SD_CACHE_LIMIT:
                shapes.clear()
            shapes[shape] = skeleton
        return skeleton

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
        raw: tuple[tuple[str, str], ...] = ()  # (field, text as sent) where a stand-in replaced it
        parts = text.split(" ", 6)
        head = parts[0]
        strict = self._strict
        pri_strings = None if strict else _USUAL_HEADS.get(head)
        if pri_strings is None:
            gt = head.find(">", 1, 5)
            pri_text = head[1:gt]
            if head[:1] != "<" or gt < 0 or not pri_text.isdigit() or not pri_text.isascii():
                return self._unparsed(text, peer, receive_time_ns, flags, "no <PRI> at the start")
            pri = int(pri_text)
            version = head[gt + 1 :]
            if strict:
                reason = _strict_header_problem(parts, pri_text, pri, version)
                if reason:
                    return self._unparsed(text, peer, receive_time_ns, flags, reason)
            elif not version.isdigit():
                return self._unparsed(text, peer, receive_time_ns, flags, f"VERSION {version!r} is not a number")
            if pri < 192:
                pri_strings = PRI_STRINGS[pri]
            else:
                pri_strings = _UNKNOWN_PRI
                flags = (*flags, FLAG_BAD_PRI)
                raw = ((RAW_PRI, pri_text),)
        n = len(parts)
        if n < 7:
            # Lenient: a short header, the missing fields NIL.
            parts += ["-"] * (6 - n)
            parts.append("")

        # TIMESTAMP
        ts = parts[1]
        if ts == "-":
            seconds = receive_time_ns // 1_000_000_000
            ns = receive_time_ns % 1_000_000_000
        else:
            when = self._times.read(ts)
            if when is None:
                if strict:
                    return self._unparsed(text, peer, receive_time_ns, flags, f"TIMESTAMP {ts!r} is not RFC 3339")
                flags = (*flags, FLAG_BAD_TIMESTAMP)
                raw = (*raw, (RAW_TIMESTAMP, ts))
                seconds = receive_time_ns // 1_000_000_000
                ns = receive_time_ns % 1_000_000_000
            else:
                seconds, ns = when

        # STRUCTURED-DATA and MSG
        rest = parts[6]
        sd_json: str | None = None
        if rest[:1] == "-":
            msg = rest[2:]
            if rest[1:2] not in ("", " "):
                if strict:
                    return self._unparsed(text, peer, receive_time_ns, flags, "no SP after the STRUCTURED-DATA NILVALUE")
                msg = rest  # lenient: no SD field at all, MSG starts here
        elif rest[:1] == "[":
            # Usually the SD ends at the first "] " (or at the end of the frame).
            end = rest.find("] ") + 1 or (len(rest) if rest[-1] == "]" else 0)
            sd_json = self._sd_json(rest[:end]) if end else None
            if sd_json is None:
                m = self._sd_pattern.match(rest)  # "] " inside a value, or malformed
                if m is not None and rest[m.end() : m.end() + 1] in ("", " "):
                    end = m.end()
                    sd_json = self._sd_json(rest[:end])
            if sd_json is None:
                if strict:
                    return self._unparsed(text, peer, receive_time_ns, flags, "STRUCTURED-DATA is malformed")
                flags = (*flags, FLAG_BAD_STRUCTURED_DATA)
                msg = rest
            else:
                msg = rest[end + 1 :]
        elif strict:
            return self._unparsed(text, peer, receive_time_ns, flags, "no STRUCTURED-DATA after MSGID")
        else:
            msg = rest
        if msg[:1] == _BOM:
            msg = msg[1:]

        host = parts[2]
        app = parts[3]
        procid = parts[4]
        msgid = parts[5]
        values = [
            "" if app == "-" else app,
            pri_strings[0],
            pri_strings[1],
            pri_strings[2],
            str(seconds * 1_000_000_000 + ns),
            peer if host == "-" else host,
            peer,
            msg,
        ]
        has_msgid = msgid != "-"
        has_procid = procid != "-"
        if sd_json is not None:
            values.append(sd_json)
        if has_msgid:
            values.append(msgid)
        if has_procid:
            values.append(procid)
        keys = _KEYS[sd_json is not None, has_msgid, has_procid]
        if raw:
            keys = _WITH_RAW[keys, tuple(key for key, _ in raw)]
            values += [value for _, value in raw]
        return Record(seconds, ns, keys, values, peer, _NO_TAGS, flags)

    @staticmethod
    def _unparsed(text: str, peer: str, receive_time_ns: int, flags: tuple[str, ...], reason: str) -> Record:
        return raw_record(text, peer, receive_time_ns, (*flags, FLAG_PARSE_ERROR), f"RFC 5424: {reason}")


def _strict_header_problem(parts: list[str], pri_text: str, pri: int, version: str) -> str | None:
    if (len(pri_text) > 1 and pri_text[0] == "0") or pri > 191:
        return f"PRI {pri_text!r} is not 0-191 without leading zeros"
    if version != "1":
        return f"VERSION {version!r} is not 1"
    if len(parts) < 7:
        return "the header has fewer than seven fields"
    for index, name, limit in _STRICT_HEADER_LIMITS:
        value = parts[index]
        if not _PRINTUSASCII.fullmatch(value) or len(value) > limit:
            return f"{name} {value[:40]!r} is not 1-{limit} printable ASCII characters"
    return None
