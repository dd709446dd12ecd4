"""``receiverctl rsyslog-config`` and ``receiverctl identity``: what senders and operators need to know.

    receiverctl rsyslog-config [--transport tcp|udp] [--tag TAG] [--host HOST] [--port PORT] [-c CONFIG]
    receiverctl identity [-c CONFIG] [--sender IP [HOSTNAME]]

``rsyslog-config`` prints the exact rsyslog snippet that forwards
everything here as Logtail's ALI_LOG_FMT streamlog lines: maxMessageSize
raised (rsyslog's 8 KiB default cuts long messages) and a disk-assisted
queue that keeps messages while the receiver is away and retries forever.
``identity`` prints the appliance's identities and machine groups, and
which groups a given sender falls in.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path
from typing import Any

from receiver.cli import config_of

__all__ = ["add_commands", "rsyslog_snippet"]

ALI_LOG_FMT = (
    "0.1 {tag} %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %pri-text% "
    "%protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\\n"
)


def rsyslog_snippet(*, host: str, port: int, transport: str, tag: str) -> str:
    """The rsyslog configuration that forwards every message to ``host:port`` as ALI_LOG_FMT lines."""
    template = ALI_LOG_FMT.format(tag=tag)
    return f'''# /etc/rsyslog.d/60-syslog-receiver.conf: forward everything to the syslog receiver.
# Written by `receiverctl rsyslog-config`; restart rsyslog after installing it.
#
# Long messages: rsyslog cuts input at maxMessageSize (8 KiB by default). The
# global() line must come before any input in rsyslog.conf: move it to the top
# of /etc/rsyslog.conf if rsyslog warns that it comes too late.
global(maxMessageSize="64k")

# Logtail's streamlog layout (ALI_LOG_FMT): the receiver reads its fields by name.
template(name="ALI_LOG_FMT" type="string"
         string="{template}")

# A disk-assisted queue keeps messages while the receiver is away (up to 1 GB),
# saves them across rsyslog restarts, and retries for ever.
*.* action(type="omfwd" target="{host}" port="{port}" protocol="{transport}" template="ALI_LOG_FMT"
           queue.type="LinkedList" queue.filename="syslog-receiver" queue.maxDiskSpace="1g"
           queue.saveOnShutdown="on" action.resumeRetryCount="-1" action.resumeInterval="10")
'''


def add_commands(commands: Any, usage_error: type[Exception]) -> None:
    r = commands.add_parser(
        "rsyslog-config", help="the rsyslog snippet that forwards to this receiver",
        description="Print the rsyslog configuration that forwards every message here as ALI_LOG_FMT lines.",
    )
    r.add_argument("--transport", choices=("tcp", "udp"), default="tcp",
                   help="tcp (default; with the disk queue, nothing is lost while the receiver is away) or udp")
    r.add_argument("--tag", default="sys_tag", help="the streamlog tag routes select on (default sys_tag)")
    r.add_argument("--host", help="this receiver's name or address as senders reach it (default: this host's name)")
    r.add_argument("--port", type=int, help="default: the configuration's first listener of that transport")
    r.add_argument("-c", "--config", type=Path, help="the receiver's configuration")
    r.set_defaults(run=_rsyslog_config, usage_error=usage_error)

    i = commands.add_parser(
        "identity", help="this appliance's identities and machine groups",
        description="Print the identities (__user_defined_id__) and machine groups (__machine_group__).",
    )
    i.add_argument("-c", "--config", type=Path, help="the receiver's configuration")
    i.add_argument("--sender", nargs="+", metavar=("IP", "HOSTNAME"),
                   help="also say which machine groups a sender with this address (and hostname) is in")
    i.set_defaults(run=_identity, usage_error=usage_error)


def _rsyslog_config(args: argparse.Namespace) -> int:
    config = config_of(args)
    port = args.port
    if port is None:
        listener = next((x for x in config.listeners if x.transport == args.transport), None)
        if listener is None:
            raise args.usage_error(
                f"the configuration ({config.source}) has no {args.transport} listener; add one, or give --port"
            )
        port = listener.port
    if not 0 < port < 65536:
        raise args.usage_error(f"--port {port}: give the port senders connect to (1 to 65535)")
    if not args.tag or any(c.isspace() or c in '"\\%' for c in args.tag):
        raise args.usage_error(f"--tag {args.tag!r}: a tag is one word without quotes, backslashes or %")
    host = args.host or socket.getfqdn()
    print(rsyslog_snippet(host=host, port=port, transport=args.transport, tag=args.tag), end="")
    return 0


def _identity(args: argparse.Namespace) -> int:
    from receiver.identity import Identities, MachineGroups

    config = config_of(args)
    identities = Identities(config.identity.user_defined_id_file, clock=time.monotonic)
    current = identities.current()
    print(f"identities (__user_defined_id__): {' '.join(current) or 'none'}")
    print(f"  from {config.identity.user_defined_id_file} and ALIYUN_LOGTAIL_USER_DEFINED_ID")
    if identities.problem:
        print(f"  note: {identities.problem}")
    print("machine groups (__machine_group__):" + ("" if config.machine_groups else " none"))
    for group in config.machine_groups:
        print(f"  {group.name}: " + ", ".join([*group.networks, *(f"hostname {h}" for h in group.hostnames)]))
    if args.sender:
        if len(args.sender) > 2:
            raise args.usage_error("--sender takes an address and, optionally, a hostname")
        address, hostname = args.sender[0], (args.sender[1] if len(args.sender) > 1 else "")
        groups = MachineGroups(config.machine_groups).of(address, hostname)
        who = f"{address}" + (f" ({hostname})" if hostname else "")
        print(f"sender {who}: {', '.join(groups) if groups else 'in no machine group'}")
    return 0
