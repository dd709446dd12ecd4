"""The line of a key path in the text of a configuration file, for messages.

tomllib (and json) give the values of a file but not where each one was
written; an error that says ``receiver.toml:14`` needs the line. So
:class:`Locator` walks the text itself, after the parser has accepted it,
and notes the line of every key path it meets. It never decides whether the
text is valid: what it does not follow ends the walk, and lookups fall back
to the nearest enclosing key path found.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping

__all__ = ["KeyPath", "Locator"]

KeyPath = tuple[str | int, ...]
"""A key path: table keys and array indices, ``("listeners", 1, "framing")``."""


class _Stop(Exception):
    """The locator met text it does not follow; the lines found so far stand."""


class Locator:
    """The line of each key path in TOML (or JSON) text a parser has accepted.

    It follows ``[table]`` and ``[[array]]`` headers (counting array
    elements), ``key = value`` lines with dotted or quoted keys, and values:
    strings of every kind, arrays (each element's index) and inline tables.
    JSON is the same walk with ``:`` between key and value. Anything it does
    not follow ends the walk; lookups then fall back to the nearest enclosing
    key path found, and finally to line 1.
    """

    _BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

    def __init__(self, text: str, *, json_text: bool = False) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[KeyPath, int] = {}
        try:
            if json_text:
                self._skip()
                self._value(())
            else:
                self._document()
        except (_Stop, IndexError, ValueError):
            pass

    def line_of(self, key_path: KeyPath) -> int:
        """The line of ``key_path``, else of the nearest enclosing path found, else 1."""
        while key_path:
            if key_path in self.lines:
                return self.lines[key_path]
            key_path = key_path[:-1]
        return 1

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _record(self, key_path: KeyPath, pos: int) -> None:
        self.lines.setdefault(key_path, self._line_at(pos))

    def _at(self, s: str) -> bool:
        return self._text.startswith(s, self._pos)

    def _skip(self, *, newlines: bool = True) -> None:
        """Past spaces, tabs, comments and (unless told otherwise) line ends."""
        text = self._text
        while self._pos < len(text):
            c = text[self._pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self._pos += 1
            elif c == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _document(self) -> None:
        current: KeyPath = ()
        arrays: dict[KeyPath, int] = {}
        text = self._text
        while True:
            self._skip()
            if self._pos >= len(text):
                return
            start = self._pos
            if self._at("[["):
                self._pos += 2
                keys = self._key()
                self._expect("]]")
                array = self._resolve(keys[:-1], arrays) + keys[-1:]
                index = arrays.get(array, 0)
                arrays[array] = index + 1
                current = (*array, index)
                for n in range(1, len(current) + 1):
                    self._record(current[:n], start)
            elif self._at("["):
                self._pos += 1
                keys = self._key()
                self._expect("]")
                current = self._resolve(keys, arrays)
                for n in range(1, len(current) + 1):
                    self._record(current[:n], start)
            else:
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(current + keys[:n], start)
                self._expect("=")
                self._value(current + keys)

    @staticmethod
    def _resolve(keys: KeyPath, arrays: Mapping[KeyPath, int]) -> KeyPath:
        """A header's key path, with the current index of each array of tables in it."""
        out: KeyPath = ()
        for key in keys:
            out = (*out, key)
            if out in arrays:
                out = (*out, arrays[out] - 1)
        return out

    def _expect(self, token: str) -> None:
        self._skip(newlines=False)
        if not self._at(token):
            raise _Stop
        self._pos += len(token)

    def _key(self) -> KeyPath:
        """A dotted key: bare words, "basic" or 'literal' strings, joined by dots."""
        parts: list[str | int] = []
        while True:
            self._skip(newlines=False)
            text = self._text
            if self._at('"'):
                start = self._pos
                self._basic_string()
                raw = text[start : self._pos]
                try:
                    parts.append(json.loads(raw))
                except ValueError:
                    parts.append(raw[1:-1])
            elif self._at("'"):
                end = text.index("'", self._pos + 1)
                parts.append(text[self._pos + 1 : end])
                self._pos = end + 1
            else:
                match = self._BARE_KEY.match(text, self._pos)
                if match is None:
                    raise _Stop
                parts.append(match.group())
                self._pos = match.end()
            self._skip(newlines=False)
            if not self._at("."):
                return tuple(parts)
            self._pos += 1

    def _basic_string(self) -> None:
        """Past a "basic string" (the opening quote at the position)."""
        text = self._text
        i = self._pos + 1
        while text[i] != '"':
            if text[i] == "\n":
                raise _Stop
            i += 2 if text[i] == "\\" else 1
        self._pos = i + 1

    def _value(self, key_path: KeyPath) -> None:
        self._skip(newlines=False)
        text = self._text
        if self._at('"""') or self._at("'''"):
            quote = text[self._pos : self._pos + 3]
            i = self._pos + 3
            while not text.startswith(quote, i):
                i += 2 if quote == '"""' and text[i] == "\\" else 1
                if i >= len(text):
                    raise _Stop
            i += 3
            while i < len(text) and text[i] == quote[0]:  # up to two quotes end the content
                i += 1
            self._pos = i
        elif self._at('"'):
            self._basic_string()
        elif self._at("'"):
            self._pos = text.index("'", self._pos + 1) + 1
        elif self._at("["):
            self._pos += 1
            index = 0
            while True:
                self._skip()
                if self._at("]"):
                    self._pos += 1
                    return
                self._record((*key_path, index), self._pos)
                self._value((*key_path, index))
                index += 1
                self._skip()
                if self._at(","):
                    self._pos += 1
                elif not self._at("]"):
                    raise _Stop
        elif self._at("{"):
            self._pos += 1
            while True:
                self._skip()
                if self._at("}"):
                    self._pos += 1
                    return
                start = self._pos
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(key_path + keys[:n], start)
                self._skip()
                if not (self._at("=") or self._at(":")):
                    raise _Stop
                self._pos += 1
                self._value(key_path + keys)
                self._skip()
                if self._at(","):
                    self._pos += 1
                elif not self._at("}"):
                    raise _Stop
        else:
            start = self._pos
            while self._pos < len(text) and text[self._pos] not in ",]}#\r\n":
                self._pos += 1
            if self._pos == start:
                raise _Stop

