"""The real senders' configurations, and the marks that tell one run's messages from another's.

Shared by the integration tests, the benchmarks and the reliability scenarios:
Alibaba's rsyslog forwarding set-up (ALI_LOG_FMT), rsyslog's omrelp action, and
the sentinel a test sends last to know that everything before it has arrived.
"""

from __future__ import annotations

import secrets

from tests.support.programs import LOOPBACK, RSYSLOG_MODULES, Receiver, wait_until

__all__ = [
    "ALI_TEMPLATE",
    "FACILITIES",
    "OMRELP_WINDOW",
    "SEVERITIES",
    "alibaba_rsyslog_conf",
    "omrelp_conf",
    "relp_listener",
    "run_token",
    "sentinel_line",
    "sentinel_mark",
    "wait_for_sentinel",
]

# Alibaba's template for Logtail's streamlog input, verbatim (shared/reference/logtail.md).
ALI_TEMPLATE = (
    '$template ALI_LOG_FMT,"0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% '
    '%pri-text% %protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\\n"'
)

# rsyslog's names for %pri-text% (checked against rsyslogd 8.2302 output).
FACILITIES = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
]
SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

OMRELP_WINDOW = 128
"""omrelp's windowSize in :func:`omrelp_conf`: the most messages in flight unacknowledged."""


def run_token() -> str:
    """A short random word that marks this run's messages (``r`` and 8 hex digits)."""
    return "r" + secrets.token_hex(4)


def alibaba_rsyslog_conf(port: int, *, extra: str = "") -> str:
    """Alibaba's rsyslog forwarding set-up, pointed at ``127.0.0.1:port``.

    As their guide has it: a LinkedList action queue with a file name (so it is
    disk-assisted), saved on shutdown, retried forever, then the template and
    ``*.* @@host:port;ALI_LOG_FMT``. Their ``$WorkDirectory`` line is the
    harness's ``global(workDirectory=...)``. ``extra`` goes before the action.
    """
    return f"""
$ActionQueueFileName fwdRule1
$ActionQueueMaxDiskSpace 1g
$ActionQueueSaveOnShutdown on
$ActionQueueType LinkedList
$ActionResumeRetryCount -1
{extra}
{ALI_TEMPLATE}
*.* @@127.0.0.1:{port};ALI_LOG_FMT
"""


def relp_listener(port: int) -> dict[str, object]:
    """A receiver listener (for ``Receiver(listeners=...)``) speaking RELP on loopback ``port``."""
    return {"name": "relp", "transport": "relp", "address": LOOPBACK, "port": port}


def omrelp_conf(port: int) -> str:
    """omrelp to the receiver; retried every second without end, in an in-memory queue that outlives the outage."""
    return (
        f'module(load="{RSYSLOG_MODULES}/omrelp.so")\n'
        f'*.* action(type="omrelp" target="{LOOPBACK}" port="{port}" windowSize="{OMRELP_WINDOW}"\n'
        '           template="RSYSLOG_ForwardFormat" action.resumeRetryCount="-1" action.resumeInterval="1"\n'
        '           queue.type="LinkedList" queue.size="200000")\n'
    )


# -- the sentinel ------------------------------------------------------------------
#
# Waiting a fixed time for "nothing more comes" cannot fail reliably: a late duplicate may come
# after the sleep. A sentinel can: sent after the messages under test on the same ordered path
# (one connection, one rsyslog action queue), it is stored after all of them, so once it is
# stored a missing or duplicated message is visible for certain.


def sentinel_mark(run: str) -> bytes:
    """What the stored sentinel of run ``run`` contains, however a sender reformats it."""
    return b"sentinel " + run.encode()


def sentinel_line(run: str) -> bytes:
    """The sentinel of run ``run`` as an RFC 3164 line (no LF), for a sender to send after the messages under test."""
    return b"<13>Oct 11 22:14:15 sentinelhost sentinel[1]: " + sentinel_mark(run)


def wait_for_sentinel(receiver: Receiver, run: str, timeout: float = 30.0) -> None:
    """Wait until the receiver's spool holds the sentinel of run ``run``; TimeoutError with its log if not."""
    mark = sentinel_mark(run)
    wait_until(
        lambda: any(mark in frame for frame in receiver.frames()), timeout,
        message=lambda: f"the sentinel {mark!r} in the spool; log:\n{receiver.log_tail()}",
    )
