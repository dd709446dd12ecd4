"""Logtail's ``ilogtail_config.json`` read as a configuration: the receiver in place of Logtail's streamlog input.

Logtail listens for streamlog lines on ``streamlog_tcp_addr``:
``streamlog_tcp_port`` when ``streamlog_open`` is true, with
``streamlog_formats`` for the layouts beyond the built-in ones. Given that
file, the receiver listens the same way: one TCP listener named
``streamlog`` (format auto), every other setting at its default. Logtail's
other keys are ignored, each with a warning.
"""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path

from formats.streamlog import StreamlogFormat
from receiver.config.locate import KeyPath
from receiver.config.model import Config, ListenerConfig, ParseConfig, default_state_directory
from receiver.config.report import Report, as_written, kind_of
from receiver.config.rules import ADDRESS, LISTENER_RULES, Invalid, convert
from receiver.config.streamlog_formats import formats_in_entries, one_layout_per_version

__all__ = ["LOGTAIL_STREAMLOG_PORT", "read_logtail"]

LOGTAIL_STREAMLOG_PORT = 11111
"""Logtail's ``streamlog_tcp_port`` when ``ilogtail_config.json`` does not set it."""

_KEYS = ("streamlog_open", "streamlog_tcp_addr", "streamlog_tcp_port", "streamlog_formats")


def read_logtail(report: Report, data: object, base: Path) -> Config | None:
    """The configuration ``data`` (the file's JSON) describes, or None when ``report`` has errors."""
    if not isinstance(data, dict):
        report.error((), f"{kind_of(data)} is not what ilogtail_config.json holds: a JSON object of Logtail settings")
        return None
    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.8)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            report.warning((key,), f"ignored: a Logtail setting this receiver does not use{hint}")

    enabled = data.get("streamlog_open", False)
    if not isinstance(enabled, bool):
        report.error(("streamlog_open",), f"{as_written(enabled)} is {kind_of(enabled)}, not true or false")
    elif not enabled:
        said = "is false" if "streamlog_open" in data else "is missing (Logtail's default is false)"
        report.error(
            ("streamlog_open",),
            f"{said}: Logtail's streamlog input is off in this file, so the receiver would have "
            'nothing to listen on; set "streamlog_open": true',
        )

    address = "::"
    raw_address = data.get("streamlog_tcp_addr", "")
    if raw_address != "":
        try:
            address = typing.cast(str, convert(ADDRESS, raw_address, base))
        except Invalid as e:
            report.error(("streamlog_tcp_addr",), f'{e} (or "" for every address)')

    port = LOGTAIL_STREAMLOG_PORT
    try:
        port = typing.cast(int, convert(LISTENER_RULES["port"], data.get("streamlog_tcp_port", port), base))
    except Invalid as e:
        report.error(("streamlog_tcp_port",), str(e))

    found: list[tuple[StreamlogFormat, KeyPath]] = []
    if "streamlog_formats" in data:
        raw = data["streamlog_formats"]
        if isinstance(raw, str):  # Logtail accepts the list as a JSON string too
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as e:
                report.error(("streamlog_formats",), f"is a string that is not JSON: {e.msg} at character {e.pos}")
                raw = []
        found = formats_in_entries(report, raw, ("streamlog_formats",), json_syntax=True)
    formats = one_layout_per_version(report, found)

    if report.failed:
        return None
    listener = ListenerConfig(name="streamlog", transport="tcp", port=port, address=address, format="auto")
    return Config(
        state_directory=default_state_directory(),
        listeners=(listener,),
        parse=ParseConfig(streamlog_formats=formats),
        source=report.display,
    )

