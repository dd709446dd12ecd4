"""Setting up a process of the appliance: the daemon, the delivery process and its workers.

Each process starts the same way (file modes, logging, collector thresholds)
and loads its configuration the same way; this is that one way.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import sys
import time
from pathlib import Path

from receiver.config.model import Config, default_config

__all__ = [
    "GC_THRESHOLDS",
    "STATE_UMASK",
    "configure_logging",
    "load_or_report",
    "process_running",
    "raise_file_limit",
    "restrict_file_modes",
    "set_up_process",
]

log = logging.getLogger("receiver")

# Records and frames form no reference cycles; a high first threshold keeps
# the collector from rescanning every live batch dozens of times.
GC_THRESHOLDS = (100_000, 50, 100)

STATE_UMASK = 0o027
"""Files the receiver creates (spool, stores, dead letters, its configuration snapshot) are for its user
and group only: 0640 files, 0750 directories, also where no systemd ``UMask=`` sets it (``make run``)."""


def set_up_process(config: Config) -> None:
    """What every process does first: file modes, logging at the configured level, collector thresholds."""
    restrict_file_modes()
    configure_logging(config.logging.level)
    gc.set_threshold(*GC_THRESHOLDS)


def restrict_file_modes() -> None:
    """Apply :data:`STATE_UMASK` to this process and the processes it starts."""
    os.umask(STATE_UMASK)


def configure_logging(level: str) -> None:
    """One line per event on standard error, UTC times (journald adds its own)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def load_or_report(path: Path | None, program: str = "receiver") -> Config | None:
    """The configuration in ``path`` (defaults without one), or None after printing why not."""
    if path is None:
        return default_config()
    from receiver.config.file import ConfigError, load_config

    try:
        loaded = load_config(path)
    except ConfigError as e:
        print(f"{program}: {e}", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(f"{program}: warning: {warning}", file=sys.stderr)
    return loaded.config


def raise_file_limit(config: Config) -> None:
    """Allow as many open files as the listeners' connection limits need (up to the hard limit)."""
    wanted = sum(listener.max_connections for listener in config.listeners if listener.transport == "tcp") + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open files are limited to %d, fewer than the %d the connection limits need; "
            "raise LimitNOFILE (systemd) or ulimit -n", soft, wanted,
        )


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
