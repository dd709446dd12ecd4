"""``receiver``: the daemon.

    receiver run [-c FILE]          run in the foreground, logging to stderr
    receiver check-config [FILE]    validate a configuration and say what it would do

Without ``-c`` the built-in defaults apply: TCP and UDP on port 11111 on every
address, the spool under ``$STATE_DIRECTORY`` (systemd) or ``./var``.
SIGTERM or SIGINT stops gracefully: nothing read is lost.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from receiver import __version__
from receiver.config import Config, default_config

__all__ = ["main"]

log = logging.getLogger("receiver")

# Records and frames form no reference cycles; a high first threshold keeps
# the collector from rescanning every live batch dozens of times.
GC_THRESHOLDS = (100_000, 50, 100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="receiver", description="The syslog receiver appliance daemon.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the receiver in the foreground (logs to stderr)")
    run.add_argument("-c", "--config", type=Path, help="configuration file (TOML, or Logtail's ilogtail_config.json)")
    run.set_defaults(command="run")
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config", type=Path, nargs="?", help="the file (default: the built-in configuration)")
    check.set_defaults(command="check-config")
    args = parser.parse_args(argv)
    if args.command == "check-config":
        from receiver.cli.check_config import check_config

        return check_config(args.config)
    config = load_or_report(args.config)
    if config is None:
        return 2
    return run_receiver(config, args.config)


def load_or_report(path: Path | None) -> Config | None:
    """The configuration in ``path`` (defaults without one), or None after printing why not."""
    if path is None:
        return default_config()
    from receiver.config_file import ConfigError, load_config

    try:
        loaded = load_config(path)
    except ConfigError as e:
        print(f"receiver: {e}", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(f"receiver: warning: {warning}", file=sys.stderr)
    return loaded.config


STATE_UMASK = 0o027
"""Files the receiver creates (spool, stores, dead letters, its configuration snapshot) are for its user
and group only: 0640 files, 0750 directories, also where no systemd ``UMask=`` sets it (``make run``)."""


def restrict_file_modes() -> None:
    """Apply :data:`STATE_UMASK` to this process and the processes it starts."""
    os.umask(STATE_UMASK)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


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


def run_receiver(config: Config, config_path: Path | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    restrict_file_modes()
    configure_logging(config.logging.level)
    gc.set_threshold(*GC_THRESHOLDS)
    raise_file_limit(config)

    from twisted.internet import reactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    from receiver.service import ListenError, ReceiverService

    # Twisted's own messages (unhandled errors above all) go to the same log.
    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
    log.info("receiver %s starting with %s", __version__, config.source)
    service = ReceiverService(config, reactor, config_path=config_path)
    try:
        service.start()
    except ListenError as e:
        log.error("%s", e)
        reactor.callWhenRunning(reactor.stop)
        reactor.addSystemEventTrigger("before", "shutdown", service.stop)
        reactor.run()
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)

    def reload_on_sighup() -> None:
        def refused(failure: Any) -> None:
            log.error("SIGHUP: %s", failure.getErrorMessage())

        service.reload().addErrback(refused)

    # callFromThread: the one reactor call that is safe from a signal handler (it only wakes the reactor).
    waker: Any = reactor
    signal.signal(signal.SIGHUP, lambda signum, frame: waker.callFromThread(reload_on_sighup))
    # Ready only once the reactor runs: its SIGTERM handler is installed by then.
    reactor.callWhenRunning(service.announce_ready)
    reactor.run()
    return service.exit_status


if __name__ == "__main__":
    sys.exit(main())
