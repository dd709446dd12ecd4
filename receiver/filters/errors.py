"""The one error of the filter language, raised wherever a filter text is refused."""

from __future__ import annotations

__all__ = ["FilterError"]


class FilterError(ValueError):
    """A filter expression that cannot be parsed or compiled.

    The message says what was expected, names the line and column, and shows
    the text with a caret under the spot. ``reason`` is the first part alone,
    ``position`` the 0-based offset into ``text``.
    """

    def __init__(self, reason: str, text: str, position: int) -> None:
        position = max(0, min(position, len(text)))
        self.reason = reason
        self.text = text
        self.position = position
        line_start = text.rfind("\n", 0, position) + 1
        line_end = text.find("\n", position)
        self.line = text.count("\n", 0, position) + 1
        self.column = position - line_start + 1
        where = (
            f"column {self.column}"
            if "\n" not in text
            else f"line {self.line}, column {self.column}"
        )
        shown = "".join(
            c if c.isprintable() or c == "\t" else "?"
            for c in text[line_start : len(text) if line_end < 0 else line_end]
        )
        caret = "".join("\t" if c == "\t" else " " for c in shown[: self.column - 1])
        super().__init__(f"filter: {reason} at {where}\n  {shown}\n  {caret}^")
