"""How a problem in a configuration file is said: where, which key, what was written, what is allowed.

Every line :class:`Report` collects starts ``FILE:LINE: KEY.PATH:``, the
line found by :class:`~receiver.config.locate.Locator`; values are shown
as the file writes them (``"crlf"``, ``true``, ``[1, 2]``) and their types
named as TOML and JSON name them ("a string", "an integer").
"""

from __future__ import annotations

import json
import math
import re

from receiver.config.locate import KeyPath, Locator

__all__ = ["Report", "as_written", "key_path_text", "kind_of", "wrong_kind"]


def key_path_text(key_path: KeyPath) -> str:
    """``listeners[1].framing``: dotted keys, indices in brackets (counted from 0)."""
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part, ensure_ascii=False)
            out += f".{name}" if out else name
    return out


def as_written(value: object) -> str:
    """A value as it would be written in the file, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(as_written(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {as_written(v)}" for k, v in value.items()) + "}"
    elif value is None:
        text = "null"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: object) -> str:
    """What TOML (or JSON) calls the value's type, with an article."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def wrong_kind(value: object, allowed: str) -> str:
    """``"11111" is a string, not an integer ...``: a value of the wrong type."""
    if value is None:
        return f"null is not {allowed}"
    return f"{as_written(value)} is {kind_of(value)}, not {allowed}"


class Report:
    """Collects errors and warnings, each prefixed with ``FILE:LINE: KEY.PATH:``."""

    def __init__(self, display: str, locator: Locator) -> None:
        self.display = display
        self.locator = locator
        self._errors: list[tuple[int, str]] = []
        self._warnings: list[tuple[int, str]] = []

    def line(self, key_path: KeyPath) -> int:
        return self.locator.line_of(key_path)

    def _format(self, key_path: KeyPath, message: str) -> tuple[int, str]:
        line = self.line(key_path)
        where = f"{self.display}:{line}: "
        return line, where + (f"{key_path_text(key_path)}: {message}" if key_path else message)

    def error(self, key_path: KeyPath, message: str) -> None:
        self._errors.append(self._format(key_path, message))

    def warning(self, key_path: KeyPath, message: str) -> None:
        self._warnings.append(self._format(key_path, message))

    @property
    def failed(self) -> bool:
        return bool(self._errors)

    def errors(self) -> list[str]:
        return [text for _, text in sorted(self._errors, key=lambda e: e[0])]

    def warnings(self) -> tuple[str, ...]:
        return tuple(text for _, text in sorted(self._warnings, key=lambda e: e[0]))
