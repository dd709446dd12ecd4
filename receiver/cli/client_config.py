"""``receiverctl rsyslog-config`` and ``receiverctl identity``: what senders and operators need to know.

    receiverctl rsyslog-config [--transport tcp|udp|tls|relp] [--tag TAG] [--host HOST] [--port PORT]
                               [--tls] [--ca-file PATH] [--permitted-peer NAME] [-c CONFIG]
    receiverctl identity [-c CONFIG] [--sender IP [HOSTNAME]]

``rsyslog-config`` prints the exact rsyslog snippet that forwards
everything here as Logtail's ALI_LOG_FMT streamlog lines: maxMessageSize
raised (rsyslog's 8 KiB default cuts long messages) and a disk-assisted
queue that keeps messages while the receiver is away and retries forever.
``tls`` is omfwd over rsyslog's gtls driver (RFC 5425: octet-counted, the
receiver's certificate checked by name); ``relp`` is omrelp, where the
receiver acknowledges each message once its spool holds it (over TLS too
when the RELP listener has ``[listeners.tls]``). ``identity`` prints the
appliance's identities and machine groups, and which groups a given sender
falls in.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import time
from pathlib import Path
from typing import Any

from receiver.cli.usage import UsageError, config_of
from receiver.config.model import ListenerConfig

__all__ = ["DEFAULT_CA_FILE", "SenderTls", "add_commands", "rsyslog_snippet"]

ALI_LOG_FMT = (
    "0.1 {tag} %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %pri-text% "
    "%protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\\n"
)
DEFAULT_CA_FILE = "/etc/rsyslog.d/syslog-receiver-ca.pem"
"""Where the snippet has the sender look for the certificate it trusts (the receiver's, or its CA)."""
TRANSPORTS = ("tcp", "udp", "tls", "relp")
SENDER_CERTIFICATE_FILE = "/etc/rsyslog.d/syslog-sender.crt"
SENDER_KEY_FILE = "/etc/rsyslog.d/syslog-sender.key"
"""Where the snippet has the sender keep its own certificate and key, when it presents one."""
RELP_WINDOW_SIZE = 1024
"""Messages omrelp sends before it waits for acknowledgements (its default is 128; one spool commit
acknowledges many, so a larger window keeps the link busy)."""


@dataclasses.dataclass(frozen=True)
class SenderTls:
    """What the sender's side of TLS needs: the trusted certificate, the receiver's name, its own pair."""

    permitted_peer: str
    """The name the receiver's certificate must carry (its CN or a DNS name of its SAN)."""
    ca_file: str = DEFAULT_CA_FILE
    """On the sender: the receiver's certificate (self-signed) or the CA that issued it."""
    client_certificates: str = "none"
    """The listener's ``client_certificates``: "required" and "optional" give the sender a pair to present."""


def rsyslog_snippet(*, host: str, port: int, transport: str, tag: str, tls: SenderTls | None = None) -> str:
    """The rsyslog configuration that forwards every message to ``host:port`` as ALI_LOG_FMT lines.

    ``transport`` is tcp, udp, tls (omfwd with the gtls driver; ``tls``
    required) or relp (omrelp; over TLS when ``tls`` is given).
    """
    if transport == "tls" and tls is None:
        raise ValueError("transport tls needs the sender's TLS settings")
    template = ALI_LOG_FMT.format(tag=tag)
    globals_ = ['maxMessageSize="64k"']
    modules = ""
    if transport == "tls":
        assert tls is not None
        globals_.append(f'DefaultNetstreamDriverCAFile="{tls.ca_file}"')
        if _needs_own_pair(transport, tls):
            globals_ += [
                f'DefaultNetstreamDriverCertFile="{SENDER_CERTIFICATE_FILE}"',
                f'DefaultNetstreamDriverKeyFile="{SENDER_KEY_FILE}"',
            ]
        action = (
            f'*.* action(type="omfwd" target="{host}" port="{port}" protocol="tcp" template="ALI_LOG_FMT"\n'
            '           TCP_Framing="octet-counted"\n'
            '           StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"\n'
            f'           StreamDriverPermittedPeers="{tls.permitted_peer}"\n'
        )
    elif transport == "relp":
        modules = 'module(load="omrelp")\n'
        action = (
            f'*.* action(type="omrelp" target="{host}" port="{port}" template="ALI_LOG_FMT"\n'
            f'           windowSize="{RELP_WINDOW_SIZE}"\n'
        )
        if tls is not None:
            action += (
                f'           tls="on" tls.caCert="{tls.ca_file}" tls.authMode="name"\n'
                f'           tls.permittedPeer=["{tls.permitted_peer}"]\n'
            )
            action += (
                f'           tls.myCert="{SENDER_CERTIFICATE_FILE}" tls.myPrivKey="{SENDER_KEY_FILE}"\n'
            )
    else:
        action = (
            f'*.* action(type="omfwd" target="{host}" port="{port}" protocol="{transport}" template="ALI_LOG_FMT"\n'
        )
    action += (
        '           queue.type="LinkedList" queue.filename="syslog-receiver" queue.maxDiskSpace="1g"\n'
        '           queue.saveOnShutdown="on" action.resumeRetryCount="-1" action.resumeInterval="10")\n'
    )
    return f'''# /etc/rsyslog.d/60-syslog-receiver.conf: forward everything to the syslog receiver.
# Written by `receiverctl rsyslog-config`; restart rsyslog after installing it.
{_transport_notes(transport, tls)}#
# Long messages: rsyslog cuts input at maxMessageSize (8 KiB by default). The
# global() line must come before any input in rsyslog.conf: move it to the top
# of /etc/rsyslog.conf if rsyslog warns that it comes too late.
global({" ".join(globals_)})
{modules}
# Logtail's streamlog layout (ALI_LOG_FMT): the receiver reads its fields by name.
template(name="ALI_LOG_FMT" type="string"
         string="{template}")

# A disk-assisted queue keeps messages while the receiver is away (up to 1 GB),
# saves them across rsyslog restarts, and retries for ever.
{action}'''


def _needs_own_pair(transport: str, tls: SenderTls) -> bool:
    """Whether the sender presents a certificate: asked for, or omrelp (librelp's TLS needs one)."""
    return tls.client_certificates != "none" or transport == "relp"


def _transport_notes(transport: str, tls: SenderTls | None) -> str:
    """Comment lines that say what the sender needs besides this file."""
    lines: list[str] = []
    if transport == "relp":
        lines += [
            "RELP (needs the rsyslog-relp package): the receiver acknowledges each",
            "message once its spool holds it; rsyslog sends again what was not",
            "acknowledged, so nothing is lost across a reconnect.",
        ]
    if tls is not None:
        lines += [
            "TLS" + (" (needs the rsyslog-gnutls package)" if transport == "tls" else "") + ": copy the receiver's",
            f"certificate (or its CA's) to {tls.ca_file}.",
            f"The receiver's certificate must carry the name {tls.permitted_peer}",
            "(`receiverctl tls show CERT` lists its names).",
        ]
        if tls.client_certificates != "none":
            lines += [
                f"The receiver asks for client certificates ({tls.client_certificates}): put this",
                f"sender's certificate and key at {SENDER_CERTIFICATE_FILE} and",
                f"{SENDER_KEY_FILE}, readable by rsyslog.",
            ]
        elif transport == "relp":
            lines += [
                "omrelp needs a certificate and key of its own for TLS (without one librelp",
                "offers only anonymous ciphers, which the receiver refuses); the receiver does",
                "not check it, so a self-signed pair does: `receiverctl tls selfsigned --out",
                f"DIR --name $(hostname)`, then copy them to {SENDER_CERTIFICATE_FILE} and",
                f"{SENDER_KEY_FILE}, readable by rsyslog.",
            ]
    return "".join(["#\n", *(f"# {line}\n" for line in lines)]) if lines else ""


def add_commands(commands: Any) -> None:
    r = commands.add_parser(
        "rsyslog-config", help="the rsyslog snippet that forwards to this receiver",
        description="Print the rsyslog configuration that forwards every message here as ALI_LOG_FMT lines.",
    )
    r.add_argument("--transport", choices=TRANSPORTS, default="tcp",
                   help="tcp (default; with the disk queue, nothing is lost while the receiver is away), udp, "
                        "tls (a TCP listener with [listeners.tls]; rsyslog's gtls driver) or relp (each message "
                        "acknowledged once the spool holds it)")
    r.add_argument("--tag", default="sys_tag", help="the streamlog tag routes select on (default sys_tag)")
    r.add_argument("--host", help="this receiver's name or address as senders reach it (default: this host's name)")
    r.add_argument("--port", type=int, help="default: the configuration's first listener of that transport")
    r.add_argument("--tls", action="store_true",
                   help="relp: over TLS (default: when the configuration's RELP listener has [listeners.tls])")
    r.add_argument("--ca-file", default=DEFAULT_CA_FILE,
                   help=f"tls, relp over TLS: where the sender keeps the certificate it trusts (default {DEFAULT_CA_FILE})")
    r.add_argument("--permitted-peer", metavar="NAME",
                   help="tls, relp over TLS: the name the receiver's certificate carries (default: --host)")
    r.add_argument("-c", "--config", type=Path, help="the receiver's configuration")
    r.set_defaults(run=_rsyslog_config)

    i = commands.add_parser(
        "identity", help="this appliance's identities and machine groups",
        description="Print the identities (__user_defined_id__) and machine groups (__machine_group__).",
    )
    i.add_argument("-c", "--config", type=Path, help="the receiver's configuration")
    i.add_argument("--sender", nargs="+", metavar=("IP", "HOSTNAME"),
                   help="also say which machine groups a sender with this address (and hostname) is in")
    i.set_defaults(run=_identity)


def _listener_for(transport: str, listeners: tuple[ListenerConfig, ...]) -> ListenerConfig | None:
    """The first listener a sender of ``transport`` talks to (tls: a TCP listener with TLS; tcp: one without)."""
    for listener in listeners:
        if transport == "tls" and listener.transport == "tcp" and listener.tls is not None:
            return listener
        if transport == "tcp" and listener.transport == "tcp" and listener.tls is None:
            return listener
        if transport in ("udp", "relp") and listener.transport == transport:
            return listener
    return None


def _rsyslog_config(args: argparse.Namespace) -> int:
    config = config_of(args)
    listener = _listener_for(args.transport, config.listeners)
    port = args.port
    if port is None:
        if listener is None:
            what = "TCP listener with [listeners.tls]" if args.transport == "tls" else f"{args.transport} listener"
            raise UsageError(f"the configuration ({config.source}) has no {what}; add one, or give --port")
        port = listener.port
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: give the port senders connect to (1 to 65535)")
    if not args.tag or any(c.isspace() or c in '"\\%' for c in args.tag):
        raise UsageError(f"--tag {args.tag!r}: a tag is one word without quotes, backslashes or %")
    for option, value in (("--ca-file", args.ca_file), ("--permitted-peer", args.permitted_peer or "")):
        if any(c.isspace() or c in '"\\' for c in value):
            raise UsageError(f"{option} {value!r}: no spaces, quotes or backslashes")
    host = args.host or socket.getfqdn()
    listener_tls = listener.tls if listener is not None else None
    tls = None
    if args.tls and args.transport in ("tcp", "udp"):
        raise UsageError(f"--tls: for a {args.transport} sender, give --transport tls (or relp --tls)")
    if args.transport == "tls" or listener_tls is not None or args.tls:
        peer = args.permitted_peer or host
        tls = SenderTls(peer, args.ca_file, listener_tls.client_certificates if listener_tls else "none")
        if listener_tls is not None:
            _warn_if_unnamed(listener_tls.certificate_file, peer)
    print(rsyslog_snippet(host=host, port=port, transport=args.transport, tag=args.tag, tls=tls), end="")
    return 0


def _warn_if_unnamed(certificate_file: Path, peer: str) -> None:
    """Say so (stderr) when the receiver's certificate does not carry the name the sender will check."""
    from cryptography import x509

    from receiver.ingest.tls import certificate_names

    try:
        certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
    except (OSError, ValueError):
        return  # not readable here (another user's file, another machine): nothing to compare
    names = list(dict.fromkeys(certificate_names(certificate)))
    if peer.lower() not in {n.lower() for n in names}:
        print(
            f"note: the receiver's certificate {certificate_file} names {', '.join(names) or 'nothing'}, not "
            f"{peer}: rsyslog will refuse it; give --permitted-peer with one of its names (or --host), or make a "
            f"certificate with that name (receiverctl tls selfsigned --name {peer})",
            file=sys.stderr,
        )


def _identity(args: argparse.Namespace) -> int:
    from receiver.config.identity import Identities, MachineGroups

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
            raise UsageError("--sender takes an address and, optionally, a hostname")
        address, hostname = args.sender[0], (args.sender[1] if len(args.sender) > 1 else "")
        groups = MachineGroups(config.machine_groups).of(address, hostname)
        who = f"{address}" + (f" ({hostname})" if hostname else "")
        print(f"sender {who}: {', '.join(groups) if groups else 'in no machine group'}")
    return 0
