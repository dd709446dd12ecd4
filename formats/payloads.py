"""Structured payloads inside a message's text: key=value, CEF and LEEF.

Each reader is a pure function from the text (a record's ``_content_``) to
a list of (name, value) pairs, empty when the text is not of its grammar; none
raises. The raw text always stays in ``_content_``; the pairs are added as
fields by :func:`formats.parse.make_parser` (``payload``), named with a prefix
per grammar so that they never collide with the syslog fields:

- **key=value** (FortiGate, pfSense, many firewalls): ``kv.<key>``. Pairs are
  separated by whitespace; a key is ``[A-Za-z_][A-Za-z0-9_.:-]*``; a value is
  a double-quoted string, in which ``\\"`` and ``\\\\`` are a quote and a
  backslash (any other backslash is kept as sent), or runs to the next
  whitespace. Words that are not pairs are skipped. A repeated key keeps its
  first value: a device writes its own fields first, and text later in a line
  may only resemble pairs.
- **CEF** (ArcSight): ``CEF:Version|Device Vendor|Device Product|Device
  Version|Signature ID|Name|Severity|Extension``, from ``CEF:`` at the start
  of the text or after a space. The header gives ``cef.version``,
  ``cef.device_vendor``, ``cef.device_product``, ``cef.device_version``,
  ``cef.signature_id``, ``cef.name``, ``cef.severity`` (``\\|`` and ``\\\\``
  unescaped); each extension pair ``cef.<key>``. An extension value may hold
  spaces: it runs to the space before the next ``key=``; ``\\=``, ``\\\\``,
  ``\\n`` and ``\\r`` in it are unescaped. A repeated key keeps its first value.
- **LEEF** (QRadar): ``LEEF:1.0|Vendor|Product|Version|EventID|`` then
  tab-separated ``key=value`` attributes; ``LEEF:2.0`` has one more header
  field, the attribute delimiter: one character, or its code in hex (``x09``,
  ``0x5E``); empty means tab. Fields ``leef.version``, ``leef.vendor``,
  ``leef.product``, ``leef.product_version``, ``leef.event_id``,
  ``leef.<key>``. A repeated key keeps its first value.
"""

from __future__ import annotations

import re

__all__ = ["payload_fields", "read_cef", "read_kv", "read_leef"]

Pairs = list[tuple[str, str]]

_KV_UNESCAPE = re.compile(r'\\(["\\])')
_CEF_START = re.compile(r"(?:^|(?<= ))CEF:(\d+)\|")
_CEF_HEADER_FIELD = re.compile(r"((?:[^|\\]|\\.)*)\|", re.DOTALL)
_CEF_HEADER_UNESCAPE = re.compile(r"\\([|\\])")
_CEF_NAMES = ("device_vendor", "device_product", "device_version", "signature_id", "name", "severity")
# A key starts the text or follows a space; it cannot contain a backslash, so "\=" never ends one.
# Written as two patterns so that the common one starts with a literal space, which the engine finds
# without trying every position.
_CEF_FIRST_KEY = re.compile(r"([A-Za-z0-9_.\[\]-]+)=")
_CEF_KEY = re.compile(r" ([A-Za-z0-9_.\[\]-]+)=")
_CEF_VALUE_ESCAPES = {"\\=": "=", "\\\\": "\\", "\\n": "\n", "\\r": "\r"}
_CEF_VALUE_UNESCAPE = re.compile(r"\\[=\\nr]")
_LEEF_START = re.compile(r"(?:^|(?<= ))LEEF:(1\.0|2\.0)\|")
_LEEF_NAMES = ("vendor", "product", "product_version", "event_id")


def _add(pairs: Pairs, seen: set[str], name: str, value: str) -> None:
    if name not in seen:
        seen.add(name)
        pairs.append((name, value))


# A pair is a whole word: it starts the text or follows white space, and its value ends at white space
# or the end. The value group is atomic: a quoted value followed by more than white space ("k="v"w")
# is no pair at all, never the unquoted reading of the same characters.
_KV_PAIR = re.compile(
    r'(?:^|(?<=\s))([A-Za-z_][A-Za-z0-9_.:-]*)=(?>"((?:[^"\\]|\\.)*)"|(\S*))(?=\s|$)', re.DOTALL
)


def read_kv(text: str, prefix: str = "kv.") -> Pairs:
    """The key=value pairs of ``text``, named ``prefix + key``: whole words ``key=value`` or
    ``key="a value"`` (``\\"`` and ``\\\\`` escaped in it); other words are skipped."""
    pairs: Pairs = []
    seen: set[str] = set()
    for m in _KV_PAIR.finditer(text):
        key, quoted, value = m.groups()
        if quoted is not None:
            value = _KV_UNESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        _add(pairs, seen, prefix + key, value)
    return pairs


def read_cef(text: str, prefix: str = "cef.") -> Pairs:
    """The header and extension of the CEF event in ``text``, or [] when there is none."""
    start = _CEF_START.search(text)
    if start is None:
        return []
    pairs: Pairs = [(prefix + "version", start.group(1))]
    pos = start.end()
    for name in _CEF_NAMES:
        m = _CEF_HEADER_FIELD.match(text, pos)
        if m is None:
            return []  # a header cut short is not CEF
        value = m.group(1)
        pairs.append((prefix + name, _CEF_HEADER_UNESCAPE.sub(r"\1", value) if "\\" in value else value))
        pos = m.end()
    seen = {name for name, _ in pairs}
    extension = text[pos:]
    first = _CEF_FIRST_KEY.match(extension)
    keys = [first] if first is not None else []
    keys += _CEF_KEY.finditer(extension, first.end() if first is not None else 0)
    for i, key in enumerate(keys):
        end = keys[i + 1].start(1) - 1 if i + 1 < len(keys) else len(extension)
        value = extension[key.end() : max(end, key.end())]
        if "\\" in value:
            value = _CEF_VALUE_UNESCAPE.sub(lambda e: _CEF_VALUE_ESCAPES[e.group()], value)
        _add(pairs, seen, prefix + key.group(1), value)
    return pairs


def _leef_delimiter(field: str) -> str | None:
    """LEEF 2.0's delimiter: one character, or its hex code (x09, 0x09); empty means tab."""
    if field == "":
        return "\t"
    if len(field) == 1:
        return field
    digits = field[2:] if field[:2].lower() == "0x" else field[1:] if field[:1].lower() == "x" else ""
    if 1 <= len(digits) <= 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
        code = int(digits, 16)
        return chr(code) if 0 < code < 0xD800 else None
    return None


def read_leef(text: str, prefix: str = "leef.") -> Pairs:
    """The header and attributes of the LEEF event in ``text``, or [] when there is none."""
    start = _LEEF_START.search(text)
    if start is None:
        return []
    version = start.group(1)
    parts = text[start.end() :].split("|", 5 if version == "2.0" else 4)
    header_count = 5 if version == "2.0" else 4
    if len(parts) <= header_count:
        return []
    pairs: Pairs = [(prefix + "version", version)]
    pairs += [(prefix + name, value) for name, value in zip(_LEEF_NAMES, parts, strict=False)]
    delimiter = "\t"
    if version == "2.0":
        found = _leef_delimiter(parts[4])
        if found is None:
            return []
        delimiter = found
    seen = {name for name, _ in pairs}
    for attribute in parts[header_count].split(delimiter):
        key, equals, value = attribute.partition("=")
        if equals and key:
            _add(pairs, seen, prefix + key.strip(" "), value)
    return pairs


def payload_fields(text: str, grammar: str) -> Pairs:
    """The fields of ``text`` by one grammar (``kv``, ``cef``, ``leef``) or ``auto``.

    ``auto``: CEF, else LEEF, else key=value when at least two pairs are
    found (one ``a=b`` in free text is more often prose than a payload).
    """
    if grammar == "kv":
        return read_kv(text)
    if grammar == "cef":
        return read_cef(text)
    if grammar == "leef":
        return read_leef(text)
    if "CEF:" in text:
        found = read_cef(text)
        if found:
            return found
    if "LEEF:" in text:
        found = read_leef(text)
        if found:
            return found
    if text.count("=") >= 2:
        found = read_kv(text)
        if len(found) >= 2:
            return found
    return []
