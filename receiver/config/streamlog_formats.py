"""Streamlog formats in configuration: from the files operators already have, and as entries.

Three shapes of file are accepted, told apart by content: Logtail's
``ilogtail_config.json`` (its ``streamlog_formats`` key), a bare JSON list of
``{"version", "fields"}`` entries, or rsyslog configuration text whose
templates describe streamlog lines. A configuration file may also list the
formats itself (``[parse] streamlog_formats``, or Logtail's key):
:func:`formats_in_entries` reads that list, reporting each bad entry with its
line, and :func:`one_layout_per_version` keeps each version to one layout.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from pathlib import Path

from formats.errors import FormatDefinitionError, TemplateError
from formats.rsyslog_template import streamlog_formats_in
from formats.streamlog import BUILTIN_FORMATS, StreamlogFormat
from receiver.config.locate import KeyPath
from receiver.config.report import Report, as_written, key_path_text, kind_of
from receiver.config.rules import unknown_key

__all__ = ["StreamlogFormatsFileError", "formats_in_entries", "one_layout_per_version", "read_streamlog_formats"]

_ENTRY_KEYS = ("version", "fields", "tag")


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


# -- formats listed in a configuration file ---------------------------------------


def formats_in_entries(
    report: Report, raw: object, key_path: KeyPath, *, json_syntax: bool = False
) -> list[tuple[StreamlogFormat, KeyPath]]:
    """Formats from ``[{version = "2.1", fields = ["level", "method"]}, ...]``."""
    example = (
        '[{"version": "2.1", "fields": ["level", "method"]}]' if json_syntax
        else '[{version = "2.1", fields = ["level", "method"]}]'
    )
    if not isinstance(raw, list):
        report.error(key_path, f"{as_written(raw)} is {kind_of(raw)}, not a list of formats like {example}")
        return []
    out = []
    for i, entry in enumerate(raw):
        entry_path = (*key_path, i)
        if not isinstance(entry, dict):
            report.error(entry_path, f"{as_written(entry)} is {kind_of(entry)}, not a format like {example[1:-1]}")
            continue
        for key in entry:
            if key not in _ENTRY_KEYS:
                unknown_key(report, (*entry_path, key), _ENTRY_KEYS, "a streamlog format")
        version, fields, tag = entry.get("version"), entry.get("fields"), entry.get("tag")
        good = True
        if not isinstance(version, str):
            report.error(
                (*entry_path, "version"),
                "missing; a format needs a version string like \"2.1\"" if version is None
                else f"{as_written(version)} is {kind_of(version)}, not a version string like \"2.1\"",
            )
            good = False
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            report.error(
                (*entry_path, "fields"),
                "missing; a format needs its field names, like [\"level\", \"method\"]" if fields is None
                else f"{as_written(fields)} is not a list of field names like [\"level\", \"method\"]",
            )
            good = False
        if tag is not None and not isinstance(tag, str):
            report.error((*entry_path, "tag"), f"{as_written(tag)} is {kind_of(tag)}, not a tag string like \"sys_tag\"")
            good = False
        if not good:
            continue
        try:
            out.append((
                StreamlogFormat(
                    version=typing.cast(str, version),
                    fields=tuple(typing.cast(list[str], fields)),
                    tag=typing.cast(str | None, tag),
                ),
                entry_path,
            ))
        except FormatDefinitionError as e:
            report.error(entry_path, str(e))
    return out


def one_layout_per_version(report: Report, found: Sequence[tuple[StreamlogFormat, KeyPath]]) -> tuple[StreamlogFormat, ...]:
    """One layout per version; redefining a built-in one is allowed, with a warning."""
    builtin = {f.version: f for f in BUILTIN_FORMATS}
    seen: dict[str, tuple[StreamlogFormat, KeyPath]] = {}
    out = []
    for fmt, key_path in found:
        if fmt.version in seen:
            first, first_path = seen[fmt.version]
            if first.fields != fmt.fields:
                report.error(
                    key_path,
                    f"streamlog version {fmt.version} is already defined by {key_path_text(first_path)} "
                    f"(line {report.line(first_path)}) with other fields ({' '.join(first.fields)}); "
                    "a version has one layout",
                )
            continue
        seen[fmt.version] = (fmt, key_path)
        known = builtin.get(fmt.version)
        if known is not None and known.fields != fmt.fields:
            report.warning(
                key_path,
                f"redefines the built-in streamlog version {fmt.version} (fields "
                f"{' '.join(known.fields)} msg): its lines will be read as "
                f"{' '.join(fmt.fields)} msg instead",
            )
        out.append(fmt)
    return tuple(out)
