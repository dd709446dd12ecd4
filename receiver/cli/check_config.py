"""``receiver check-config [FILE]``: validate a configuration and say what it would do.

    $ receiver check-config conf/receiver.toml
    OK: conf/receiver.toml: 2 listeners (tcp [::]:11111 tcp-11111, udp [::]:11111 udp-11111), spool var/spool

Warnings go to stderr after the OK line. A file that cannot be used prints
every error, one per line, to stderr, and the exit status is 2. Without a
file the built-in defaults are checked (what ``receiver run`` without ``-c``
would do).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from receiver.config import Config, ListenerConfig, default_config
from receiver.config_file import ConfigError, load_config

__all__ = ["EXIT_INVALID", "check_config", "describe_listener"]

EXIT_INVALID = 2
"""The exit status when the configuration cannot be used (as for a usage error)."""


def check_config(path: Path | None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Print what ``path`` (or the built-in defaults) configures; returns the exit status."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    warnings: tuple[str, ...] = ()
    if path is None:
        config = default_config()
    else:
        try:
            loaded = load_config(path)
        except ConfigError as e:
            for error in e.errors:
                print(error, file=err)
            return EXIT_INVALID
        config, warnings = loaded.config, loaded.warnings
    print(f"OK: {summary(config)}", file=out)
    for warning in warnings:
        print(f"warning: {warning}", file=err)
    return 0


def summary(config: Config) -> str:
    """``<source>: N listeners (...), spool <dir>``."""
    n = len(config.listeners)
    listeners = ", ".join(describe_listener(listener) for listener in config.listeners)
    return f"{config.source}: {n} listener{'' if n == 1 else 's'} ({listeners}), spool {config.spool_directory}"


def describe_listener(listener: ListenerConfig) -> str:
    """``tcp [::]:11111 tcp-11111``: transport, address and port, name."""
    host = f"[{listener.address}]" if ":" in listener.address else listener.address
    return f"{listener.transport} {host}:{listener.port} {listener.name}"
