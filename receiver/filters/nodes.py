"""The parse tree of a filter: what :mod:`receiver.filters.grammar` builds and the engines compile.

Small immutable nodes (:class:`Comparison`, :class:`TextSearch`, :class:`And`,
:class:`Or`, :class:`Not`); the language they stand for is described in
:mod:`receiver.filters.expression`.
"""

from __future__ import annotations

import dataclasses
from typing import Final, TypeAlias

__all__ = ["MATCH_ALL", "And", "Comparison", "FilterNode", "Not", "Or", "TextSearch", "is_glob"]


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``: ``op`` is one of ``= != < <= > >= ~``, ``value`` has its escapes resolved."""

    field: str
    op: str
    value: str
    quoted: bool = False
    """Whether the value was written in double quotes (then ``*`` and ``?`` are plain characters)."""

    @property
    def wildcard(self) -> bool:
        """An unquoted value holding ``*`` or ``?``: a shell-style pattern for ``=`` and ``!=``."""
        return is_glob(self.value, self.quoted)


def is_glob(text: str, quoted: bool) -> bool:
    """Whether a value as written is a shell-style pattern: unquoted, with ``*`` or ``?`` in it."""
    return not quoted and ("*" in text or "?" in text)


@dataclasses.dataclass(frozen=True, slots=True)
class TextSearch:
    """A word or "phrase" searched in the message; ``wildcard`` for an unquoted word with ``*`` or ``?``."""

    text: str
    wildcard: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class And:
    """Every term holds; no terms at all (the empty filter) matches every record."""

    terms: tuple[FilterNode, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Or:
    """Some term holds."""

    terms: tuple[FilterNode, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Not:
    """The term does not hold (the parser cancels ``not not``)."""

    term: FilterNode


FilterNode: TypeAlias = Comparison | TextSearch | And | Or | Not
"""A node of the parse tree. ``And`` and ``Or`` have two terms or more, except the empty ``And``."""

MATCH_ALL: Final = And(())
"""The tree of the empty filter, which matches every record."""
