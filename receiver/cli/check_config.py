"""``receiver check-config [FILE]``: validate a configuration and say what it would do.

    $ receiver check-config conf/receiver.toml
    OK: conf/receiver.toml: 2 listeners (tcp [::]:11111 tcp-11111, udp [::]:11111 udp-11111), spool var/spool, sink local (local)

Upstream sinks are built as delivery would build them (credentials, key and
password files read, URLs checked; nothing is sent), so a key file of the
wrong mode is found here rather than at the first delivery; TLS listeners'
certificate and key files are loaded as the daemon loads them.

Warnings go to stderr after the OK line. A file that cannot be used prints
every error, one per line, to stderr, and the exit status is 2. Without a
file the built-in defaults are checked (what ``receiver run`` without ``-c``
would do).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from receiver.config.file import ConfigError, load_config
from receiver.config.model import (
    Config,
    ListenerConfig,
    LocalSinkConfig,
    SlsSinkConfig,
    default_config,
)

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
    problems, notes = sink_problems(config)
    tls_errors, tls_warnings = tls_problems(config)
    problems += tls_errors
    notes += tls_warnings
    problems += port_problems(config)
    if problems:
        for problem in problems:
            print(problem, file=err)
        return EXIT_INVALID
    warnings = (*warnings, *notes)
    print(f"OK: {summary(config)}", file=out)
    for warning in warnings:
        print(f"warning: {warning}", file=err)
    return 0


def sink_problems(config: Config) -> tuple[list[str], list[str]]:
    """Why configured upstream sinks could not start (errors), and what could not be checked here (notes).

    Each sink is built as delivery would build it, which reads its
    credentials, key or password file and checks its URL, but sends nothing.
    The local store is left out: opening it creates it. SLS keys taken from
    the environment belong to the receiver's environment (systemd's
    EnvironmentFile=), which need not be this shell's: missing here, they
    are a note, not an error.
    """
    from receiver.deliver.registry import build_sink
    from receiver.deliver.sinks.sls.auth import CredentialsError

    problems: list[str] = []
    notes: list[str] = []
    for sink in config.sinks:
        if isinstance(sink, LocalSinkConfig):
            continue
        try:
            build_sink(sink, config).close()
        except CredentialsError as e:
            if isinstance(sink, SlsSinkConfig) and sink.credentials_file is None:
                notes.append(f"{config.source}: sink {sink.name!r} (sls): not checked here: {e}")
            else:
                problems.append(f"{config.source}: sink {sink.name!r} ({sink.type}) cannot start: {e}")
        except Exception as e:  # each sink's own error says what is wrong and how to fix it
            problems.append(f"{config.source}: sink {sink.name!r} ({sink.type}) cannot start: {e}")
    return problems, notes


def tls_problems(config: Config) -> tuple[list[str], list[str]]:
    """Why TLS listeners could not start (their certificate and key files, read as the daemon reads
    them), and what they can start with but should be seen to (an expired certificate, a readable key)."""
    from receiver.config.model import TlsConfigError
    from receiver.ingest.tls import TlsServerContext

    problems: list[str] = []
    warnings: list[str] = []
    for listener in config.listeners:
        if listener.tls is None:  # the loader leaves UDP listeners without one
            continue
        try:
            context = TlsServerContext(listener.tls)
        except TlsConfigError as e:
            problems.append(f"{config.source}: listener {listener.name!r} cannot start: {e}")
            continue
        warnings += [f"{config.source}: listener {listener.name!r}: {w}" for w in context.warnings]
    return problems, warnings


_CAP_NET_BIND_SERVICE = 10


def port_problems(
    config: Config, *, status: Path = Path("/proc/self/status"),
    unprivileged_start: Path = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
) -> list[str]:
    """Listeners on a port this process may not bind: below the kernel's unprivileged start (1024)
    without CAP_NET_BIND_SERVICE. The unit grants that capability only by a drop-in, so a fleet on
    port 514 learns it here (the unit's ExecStartPre), not from a failed bind."""
    low = [x for x in config.listeners if 0 < x.port < _first_unprivileged_port(unprivileged_start)]
    if not low or _has_capability(status, _CAP_NET_BIND_SERVICE):
        return []
    return [
        f"{config.source}: listener {x.name!r} on port {x.port} needs CAP_NET_BIND_SERVICE, which this "
        "process does not have: under systemd add it with a drop-in (docs/systemd.md, ports below 1024), "
        "or use a port from 1024 up" for x in low
    ]


def _first_unprivileged_port(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 1024


def _has_capability(status: Path, bit: int) -> bool:
    """Whether the effective capability set (``CapEff`` of /proc/self/status) holds ``bit``."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True  # not Linux, or unreadable: let the bind itself say


def summary(config: Config) -> str:
    """``<source>: N listeners (...), spool <dir>, sinks ...``."""
    n = len(config.listeners)
    listeners = ", ".join(describe_listener(listener) for listener in config.listeners)
    sinks = ", ".join(f"{sink.name} ({sink.type})" for sink in config.sinks)
    return (
        f"{config.source}: {n} listener{'' if n == 1 else 's'} ({listeners}), spool {config.spool_directory}, "
        f"sink{'' if len(config.sinks) == 1 else 's'} {sinks}"
    )


def describe_listener(listener: ListenerConfig) -> str:
    """``tcp [::]:11111 tcp-11111``: transport, address and port, name."""
    host = f"[{listener.address}]" if ":" in listener.address else listener.address
    transport = listener.transport + ("+tls" if listener.tls is not None else "")
    return f"{transport} {host}:{listener.port} {listener.name}"
