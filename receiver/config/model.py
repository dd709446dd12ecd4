"""The receiver's configuration: frozen dataclasses with units in their names.

One TOML file (``receiver run -c FILE``) fills these; without a file the
defaults below are the appliance: TCP and UDP on port 11111 on every IPv4
and IPv6 address, a spool under ``$STATE_DIRECTORY`` (systemd) or ``./var``.
``receiver.config.file`` reads and validates files; this module only says
what a configuration is.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Literal, get_args

from formats.framing import DEFAULT_MAX_FRAME_BYTES, Framing
from formats.parse import Format
from formats.streamlog import LeadingSpace, StreamlogFormat
from receiver.config.identity import DEFAULT_USER_DEFINED_ID_FILE, MachineGroup
from receiver.config.profiles import ParseProfile, ParseSettings

__all__ = [
    "DEFAULT_LISTENERS",
    "ClickHouseSinkConfig",
    "ClientCertificates",
    "Config",
    "ControlConfig",
    "DeliverConfig",
    "HttpSinkConfig",
    "IdentityConfig",
    "LimitsConfig",
    "ListenerConfig",
    "LocalSinkConfig",
    "LogLevel",
    "LoggingConfig",
    "MetricsConfig",
    "ParseConfig",
    "RouteConfig",
    "ShutdownConfig",
    "SinkConfig",
    "SlsSinkConfig",
    "SpoolConfig",
    "SyncMode",
    "TlsConfig",
    "TlsConfigError",
    "TlsVersion",
    "Transport",
    "WhenFull",
    "default_config",
    "default_state_directory",
    "normal_fingerprint",
]

Transport = Literal["tcp", "udp", "relp"]
SyncMode = Literal["normal", "full"]
WhenFull = Literal["backpressure", "drop-oldest"]
LogLevel = Literal["debug", "info", "warning", "error"]


ClientCertificates = Literal["none", "optional", "required"]
TlsVersion = Literal["1.2", "1.3"]
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")
_HEX = re.compile(r"[0-9a-f]{64}")


class TlsConfigError(ValueError):
    """TLS settings or files that cannot be used; the message names the file or setting and the fix."""


@dataclasses.dataclass(frozen=True, slots=True)
class TlsConfig:
    """How one listener speaks TLS.

    ``allowed_subjects`` and ``allowed_fingerprints`` together are one
    allowlist: a peer is admitted when its certificate matches any entry of
    either (subject: the certificate's CN or a DNS name of its SAN, exactly
    or as ``*.example.com``, which stands for one label; fingerprint: SHA-256
    of the DER certificate, hex, colons and case optional). Both empty: every
    peer that passed the handshake is admitted.

    A subject is only worth something on a certificate that a trusted CA
    vouched for: anyone can make a certificate with any name. So
    ``allowed_subjects`` requires ``ca_file`` (the handshake then verifies
    the chain); without a CA, peers can only be pinned by fingerprint.
    """

    certificate_file: Path
    key_file: Path
    ca_file: Path | None = None
    """PEM CA certificates that client certificates must chain to."""
    client_certificates: ClientCertificates = "none"
    allowed_subjects: tuple[str, ...] = ()
    allowed_fingerprints: tuple[str, ...] = ()
    min_version: TlsVersion = "1.2"
    handshake_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.client_certificates not in get_args(ClientCertificates):
            raise TlsConfigError(
                f"client_certificates {self.client_certificates!r} is not one of none, optional, required"
            )
        if self.min_version not in get_args(TlsVersion):
            raise TlsConfigError(f'min_version {self.min_version!r} is not "1.2" or "1.3" (older TLS is not offered)')
        if not self.handshake_timeout_seconds > 0:
            raise TlsConfigError(
                f"handshake_timeout_seconds {self.handshake_timeout_seconds!r} must be a positive number of seconds"
            )
        for subject in self.allowed_subjects:
            if not _valid_subject_pattern(subject):
                raise TlsConfigError(
                    f"allowed_subjects entry {subject!r} is neither a name (web-1.example.com) "
                    "nor a one-label wildcard (*.example.com)"
                )
        for fingerprint in self.allowed_fingerprints:
            if _HEX.fullmatch(normal_fingerprint(fingerprint)) is None:
                raise TlsConfigError(
                    f"allowed_fingerprints entry {fingerprint!r} is not a SHA-256 fingerprint "
                    "(64 hex digits, colons optional; `receiverctl tls show CERT` prints it)"
                )
        allowlist = self.allowed_subjects or self.allowed_fingerprints
        if allowlist and self.client_certificates == "none":
            raise TlsConfigError(
                'allowed_subjects/allowed_fingerprints need client certificates: set client_certificates = '
                '"required" (or "optional"), or remove the allowlist'
            )
        if self.allowed_subjects and self.ca_file is None:
            raise TlsConfigError(
                "allowed_subjects needs ca_file: without a CA that verifies client certificates, anyone can "
                "make a certificate with an allowed name and be admitted. Give ca_file (the CA that issues "
                "client certificates), or pin certificates with allowed_fingerprints instead"
            )
        if self.client_certificates != "none" and self.ca_file is None and not self.allowed_fingerprints:
            raise TlsConfigError(
                f'client_certificates = "{self.client_certificates}" needs ca_file (the CA that issues client '
                "certificates) or allowed_fingerprints (pinned client certificates): without either, any "
                "self-made certificate would pass"
            )


def normal_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as lower-case hex without separators, however it was written."""
    return text.replace(":", "").replace(" ", "").lower()


def _valid_subject_pattern(pattern: str) -> bool:
    labels = pattern.removeprefix("*.").split(".")
    if pattern.startswith("*.") and len(labels) < 2:
        return False  # *.com would admit every name under a top-level domain
    return bool(pattern) and all(_LABEL.fullmatch(label) for label in labels)


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One socket the receiver listens on."""

    name: str
    transport: Transport
    """``tcp`` (syslog and streamlog, plain or TLS), ``udp``, or ``relp`` (rsyslog's
    omrelp: each message acknowledged once the spool has committed it)."""
    port: int = 11111
    address: str = "::"
    """``::`` is every IPv6 and IPv4 address (dual stack); ``0.0.0.0`` IPv4 only."""
    framing: Framing = "auto"
    """TCP only: ``auto`` decides per frame; UDP datagrams are always LF-separated records."""
    nul_ends_frame: bool = True
    """TCP with ``auto`` framing: a NUL ends a frame as LF does (Python's ``SysLogHandler`` ends
    each message with NUL and sends no LF). ``lf`` and ``octet`` framing keep NUL as a message byte."""
    format: Format = "auto"
    """How delivery parses this listener's frames."""
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Longer frames are cut here and flagged ``truncated:<length>`` (UDP datagrams cannot exceed 65,535)."""
    allowed_networks: tuple[str, ...] = ()
    """Who may send: networks or addresses (``10.0.0.0/8``, ``192.168.1.7``); empty: anyone.
    Others are refused at accept (TCP, RELP) or their datagrams dropped (UDP), counted either way."""
    rate_limit_records_per_second: float = 0.0
    """Per sender address, over all its connections to this listener (0: no limit). TCP and RELP
    senders over it are slowed (reading pauses, nothing is lost); UDP datagrams over it are dropped, counted."""
    rate_limit_bytes_per_second: float = 0.0
    """The same in bytes a second (0: no limit)."""
    rate_limit_burst_seconds: float = 2.0
    """How many seconds of its rate a sender may send at once before it is slowed."""
    # TCP and RELP
    max_connections: int = 10_000
    """Connections beyond this are refused at accept, counted and logged."""
    max_connections_per_source: int = 1_000
    """The same, per sender address."""
    idle_timeout_seconds: float = 3600.0
    """Close a connection silent this long (0: never). Never applies while reading is paused."""
    keepalive_seconds: int = 300
    """TCP keepalive idle time (0: off), so dead peers are noticed."""
    # TCP and RELP
    tls: TlsConfig | None = None
    """TLS on this listener (RFC 5425 for syslog over TCP); None: plain."""
    # UDP
    receive_buffer_bytes: int = 32 * 1024 * 1024
    """SO_RCVBUF asked for; the kernel may grant less (logged at start)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SpoolConfig:
    """The durable spool: the write-ahead log between ingest and delivery."""

    directory: Path | None = None
    """Default: ``<state directory>/spool``."""
    segment_max_bytes: int = 512 * 1024
    """A segment is committed when it holds this many bytes of frames (while a
    commit is in flight it keeps filling, up to 16 times this, and goes as soon
    as the writer is free: group commit)..."""
    segment_max_delay_ms: float = 5.0
    """...or when its first frame has waited this long, whichever comes first."""
    sync: SyncMode = "full"
    """``normal``: a commit survives a crash of the process (kill -9);
    ``full``: also a crash of the machine (fsync per commit)."""
    max_age_hours: float = 24.0
    """Frames older than this are discarded (counted and logged), as Logtail's cache does."""
    max_bytes: int = 10 * 1024**3
    """The most the spool may hold on disk (stored, i.e. compressed, bytes)."""
    when_full: WhenFull = "backpressure"
    """At ``max_bytes``: ``backpressure`` stops reading TCP (senders queue; UDP is
    dropped and counted); ``drop-oldest`` discards the oldest segments (counted)."""
    high_watermark_percent: float = 90.0
    """Of ``max_bytes``: TCP reading stops here (``backpressure``)..."""
    low_watermark_percent: float = 80.0
    """...and resumes below this."""
    memory_high_watermark_bytes: int = 64 * 1024 * 1024
    """Frames read but not yet committed: TCP reading stops above this (slow disk)..."""
    memory_low_watermark_bytes: int = 16 * 1024 * 1024
    """...and resumes below this."""


@dataclasses.dataclass(frozen=True, slots=True)
class ShutdownConfig:
    """How the receiver stops on SIGTERM/SIGINT."""

    drain_seconds: float = 5.0
    """On SIGTERM, how long senders get to notice the close and stop, while
    everything they still send is read and committed."""


@dataclasses.dataclass(frozen=True, slots=True)
class LoggingConfig:
    """The log on stderr (the journal under systemd)."""

    level: LogLevel = "info"
    repeat_interval_seconds: float = 60.0
    """Repeated events (refused connections, UDP drops) are logged at most once
    per interval, with the count since the last line."""


@dataclasses.dataclass(frozen=True, slots=True)
class ParseConfig(ParseSettings):
    """How frames become records (used by delivery and ``receiverctl``): the settings of
    :class:`~receiver.config.profiles.ParseSettings` for every sender, the ones below, and the
    profiles that change some settings for some senders."""

    streamlog_leading_space: LeadingSpace = "strip-rfc3164"
    rfc5424_strict: bool = False
    """Enforce RFC 5424's grammar and limits; violations become parse-error records."""
    streamlog_formats: tuple[StreamlogFormat, ...] = ()
    """Extra or replaced streamlog layouts (``0.1`` is built in)."""
    profiles: tuple[ParseProfile, ...] = ()
    """``[[parse.profiles]]``: settings for some senders, the first that names a frame's sender wins."""

    @property
    def settings(self) -> ParseSettings:
        """The settings every sender gets unless a profile says otherwise."""
        return ParseSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ParseSettings)})


@dataclasses.dataclass(frozen=True, slots=True)
class LocalSinkConfig:
    """The embedded store: an in-process ClickHouse (chDB) that ``receiverctl search`` and ``sql`` read."""

    name: str = "local"
    type: Literal["local"] = "local"
    path: Path | None = None
    """The store's directory. Default: ``store`` in the state directory."""
    max_age_hours: float = 7 * 24.0
    """Records the appliance received longer ago than this are removed (whole hours at a time)."""
    max_bytes: int = 10 * 1024**3
    """The oldest hours of records are removed beyond this size on disk."""
    memory_limit_bytes: int = 512 * 1024**2
    """The engine's memory (inserts, merges, queries, caches); a query that needs more fails, alone."""


@dataclasses.dataclass(frozen=True, slots=True)
class SlsSinkConfig:
    """Alibaba Cloud Log Service (PutLogs)."""

    name: str
    endpoint: str
    """``cn-hangzhou.log.aliyuncs.com``, ``https://...``, or ``http://IP:PORT``."""
    project: str
    logstore: str
    """Where records go unless a route names another logstore."""
    type: Literal["sls"] = "sls"
    credentials_file: Path | None = None
    """Keys from this file (mode 0600); without it, from the environment."""
    signature: Literal["v1", "v4"] = "v1"
    region: str | None = None
    """Needed by signature v4 (``cn-hangzhou``)."""
    compress: Literal["lz4", "zstd", "none"] = "lz4"
    topic: str = ""
    route_by_hash_key: bool = False
    """Pin each sender to a shard (``/shards/route?key=``) instead of load-balancing."""
    timeout_seconds: float = 30.0
    concurrency: int = 16
    """Requests in flight at most (each waits out a round trip to SLS: 16 is Logtail's 10 to 20); halved on
    quota answers, raised again as requests succeed."""
    max_records: int = 4096
    """Per request (one LogGroup)."""
    max_bytes: int = 3 * 1024 * 1024
    """Frame bytes per request, before encoding and compression (SLS takes 10 MB)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClickHouseSinkConfig:
    """ClickHouse over its HTTP interface (``INSERT ... FORMAT Native``, LZ4-compressed blocks)."""

    name: str
    url: str = "http://127.0.0.1:8123"
    type: Literal["clickhouse"] = "clickhouse"
    database: str = "default"
    table: str = "syslog"
    """Where records go unless a route names another table."""
    user: str = "default"
    password_file: Path | None = None
    """The password from this file (mode 0600); without it, ``CLICKHOUSE_PASSWORD`` or none."""
    create_table: bool = True
    """Create the table (docs/sinks/clickhouse.md has its schema) when it does not exist."""
    timeout_seconds: float = 30.0
    concurrency: int = 4
    """Requests in flight at most; halved on quota answers, raised again as requests succeed."""
    max_records: int = 10000
    """Rows per INSERT."""
    max_bytes: int = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class HttpSinkConfig:
    """Any HTTP collector: NDJSON batches, gzip, RFC 9421 signatures with an RFC 9530 digest."""

    name: str
    url: str
    type: Literal["http"] = "http"
    signature: Literal["hmac-sha256", "ed25519", "none"] = "hmac-sha256"
    key_file: Path | None = None
    """The HMAC secret, or the Ed25519 private key (PEM); mode 0600. Required unless signature is none."""
    key_id: str = "receiver"
    """The ``keyid`` the collector knows the key by."""
    gzip: bool = True
    timeout_seconds: float = 30.0
    concurrency: int = 4
    """Requests in flight at most; halved on quota answers, raised again as requests succeed."""
    max_records: int = 4096
    max_bytes: int = 4 * 1024 * 1024


SinkConfig = LocalSinkConfig | SlsSinkConfig | ClickHouseSinkConfig | HttpSinkConfig


@dataclasses.dataclass(frozen=True, slots=True)
class RouteConfig:
    """Where records go: the first route whose tag and filter match takes them."""

    sink: str = ""
    """The sink's name; "" for a route that drops what it takes."""
    tag: str | None = None
    """The streamlog tag (``sys_tag``), like a Logtail syslog config's tag; None: any record."""
    filter: str | None = None
    """A filter expression (``app-name=todo-list and _severity_<=4``); None: every record."""
    destination: str | None = None
    """The sink's logstore or table; None: the sink's own default."""
    name: str = ""
    drop: bool = False
    """Drop the records this route takes (counted and logged, never silently)."""


@dataclasses.dataclass(frozen=True, slots=True)
class IdentityConfig:
    user_defined_id_file: Path = DEFAULT_USER_DEFINED_ID_FILE
    """Logtail's identity file: one identity per line, re-read at most every minute."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeliverConfig:
    enabled: bool = True
    """Run the delivery process; off, the receiver only spools (benchmarks of ingest alone)."""
    default_sink: str = "local"
    """Where records go that no route takes."""
    segments_per_batch: int = 0
    """How many spool segments one delivery batch reads; 0: each sink's own (8, and 16 for the
    local store, whose every batch is one part that it merges later)."""
    poll_interval_ms: float = 50.0
    """How often an idle sink looks for new segments."""
    build_processes: int = 0
    """Worker processes that parse and encode batches for the sinks (0: one per core, less one for the
    embedded store's engine when the local store is a sink), so delivery is not bound to one core."""


@dataclasses.dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Self-protection (receiver/service/guard.py): slow senders near a limit, restart over it; never drop."""

    memory_limit_bytes: int = 2 * 1024**3
    """The daemon's resident memory: above 90% TCP reading pauses; above it, a clean stop and restart.
    0: no limit."""
    cpu_limit_percent: float = 0.0
    """Of one core, over five seconds: above it, reading pauses so ingest stays within it. 0: no limit."""
    delivery_memory_limit_bytes: int = 1024**3
    """The delivery process and its workers together (anonymous memory: the embedded store's engine
    included, its library's file pages not): above it delivery restarts from its cursors. 0: no limit."""


@dataclasses.dataclass(frozen=True, slots=True)
class ControlConfig:
    """The control API that ``receiverctl`` talks to: HTTP and JSON on a UNIX socket."""

    socket: Path | None = None
    """Default: ``$RUNTIME_DIRECTORY/control.sock`` under systemd, else ``control.sock`` in the
    state directory. Mode 0660: its group may administer the receiver."""


@dataclasses.dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus metrics over HTTP (text exposition format), on a loopback port by default."""

    enabled: bool = True
    address: str = "127.0.0.1"
    """Where to listen: loopback by default, as the metrics need no authentication."""
    port: int = 9514
    """0: any free port (for tests; the log says which)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one receiver."""

    state_directory: Path
    listeners: tuple[ListenerConfig, ...]
    spool: SpoolConfig = SpoolConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    logging: LoggingConfig = LoggingConfig()
    parse: ParseConfig = ParseConfig()
    sinks: tuple[SinkConfig, ...] = (LocalSinkConfig(),)
    routes: tuple[RouteConfig, ...] = ()
    machine_groups: tuple[MachineGroup, ...] = ()
    identity: IdentityConfig = IdentityConfig()
    deliver: DeliverConfig = DeliverConfig()
    metrics: MetricsConfig = MetricsConfig()
    control: ControlConfig = ControlConfig()
    limits: LimitsConfig = LimitsConfig()
    source: str = "built-in defaults"
    """Where this configuration came from, for messages."""

    @property
    def spool_directory(self) -> Path:
        return self.spool.directory if self.spool.directory is not None else self.state_directory / "spool"

    @property
    def control_socket(self) -> Path:
        """Where the control API listens (``[control] socket``, else the runtime or state directory)."""
        if self.control.socket is not None:
            return self.control.socket
        runtime = os.environ.get("RUNTIME_DIRECTORY", "")
        return (Path(runtime.split(":")[0]) if runtime else self.state_directory) / "control.sock"


def default_state_directory() -> Path:
    """``$STATE_DIRECTORY`` under systemd (its first entry), else ``./var``."""
    state = os.environ.get("STATE_DIRECTORY", "")
    return Path(state.split(":")[0]) if state else Path("var")


DEFAULT_LISTENERS = (
    ListenerConfig(name="tcp-11111", transport="tcp"),
    ListenerConfig(name="udp-11111", transport="udp"),
)


def default_config() -> Config:
    """The appliance with no configuration file."""
    return Config(state_directory=default_state_directory(), listeners=DEFAULT_LISTENERS)
