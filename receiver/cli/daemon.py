"""``receiver``: the daemon.

    receiver run [-c FILE]          run in the foreground, logging to stderr
    receiver check-config [FILE]    validate a configuration and say what it would do

Without ``-c`` the built-in defaults apply: TCP and UDP on port 11111 on every
address, the spool under ``$STATE_DIRECTORY`` (systemd) or ``./var``.
SIGTERM or SIGINT stops gracefully: nothing read is lost.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from receiver import __version__
from receiver.config.model import Config
from receiver.runtime.process import load_or_report, raise_file_limit, set_up_process

__all__ = ["main"]

log = logging.getLogger("receiver")


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


def run_receiver(config: Config, config_path: Path | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    set_up_process(config)
    raise_file_limit(config)

    from twisted.internet import reactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    from receiver.service.lifecycle import ListenError, ReceiverService

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
