"""Reading streamlog formats from the files operators already have.

Three shapes are accepted, told apart by content: Logtail's
``ilogtail_config.json`` (its ``streamlog_formats`` key), a bare JSON list of
``{"version", "fields"}`` entries, or rsyslog configuration text whose
templates describe streamlog lines.
"""

from __future__ import annotations

import json
from pathlib import Path

from formats.errors import FormatDefinitionError, TemplateError
from formats.rsyslog_template import streamlog_formats_in
from formats.streamlog import StreamlogFormat

__all__ = ["StreamlogFormatsFileError", "read_streamlog_formats"]


class StreamlogFormatsFileError(ValueError):
    """A file of streamlog formats cannot be used; the message names the file and the fix."""


def read_streamlog_formats(path: Path) -> tuple[list[StreamlogFormat], list[str]]:
    """The formats ``path`` defines, and warnings about what it held but could not use."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise StreamlogFormatsFileError(f"{path}: cannot read streamlog formats: {e}") from e
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return _from_json(path, text), []
    try:
        formats, rejected = streamlog_formats_in(text)
    except TemplateError as e:
        raise StreamlogFormatsFileError(f"{path}: {e}") from e
    warnings = [f"{path}:{template.line}: template {template.name}: {error}" for template, error in rejected]
    if not formats:
        raise StreamlogFormatsFileError(
            f"{path}: no streamlog format found: give ilogtail_config.json, a JSON list of "
            '{"version": ..., "fields": [...]} entries, or rsyslog text with a template '
            'like "0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% ... %msg%\\n"'
            + ("".join(f"\n  {w}" for w in warnings))
        )
    return formats, warnings


def _from_json(path: Path, text: str) -> list[StreamlogFormat]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise StreamlogFormatsFileError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from e
    entries = data.get("streamlog_formats", []) if isinstance(data, dict) else data
    if isinstance(entries, str):
        # ilogtail_config.json may carry the list as a JSON string.
        try:
            entries = json.loads(entries)
        except json.JSONDecodeError as e:
            raise StreamlogFormatsFileError(f"{path}: streamlog_formats is a string that is not JSON: {e.msg}") from e
    if not isinstance(entries, list):
        raise StreamlogFormatsFileError(
            f"{path}: streamlog_formats must be a list of {{\"version\": ..., \"fields\": [...]}} entries"
        )
    formats = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise StreamlogFormatsFileError(f"{path}: streamlog_formats[{i}] must be an object, not {entry!r}")
        try:
            formats.append(StreamlogFormat.from_logtail(entry))
        except FormatDefinitionError as e:
            raise StreamlogFormatsFileError(f"{path}: streamlog_formats[{i}]: {e}") from e
    return formats
