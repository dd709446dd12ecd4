"""The ClickHouse sink: each group is one ``INSERT ... FORMAT JSONEachRow`` over HTTP.

One request per group, to ClickHouse's HTTP interface (the body is
:func:`clickhouse_payload`, made in a worker process when delivery uses
them, else at send): the query
``INSERT INTO `db`.`table` FORMAT JSONEachRow`` as the ``query`` URL
parameter, the rows as a gzip body (``Content-Encoding: gzip``), the
credentials in the ``X-ClickHouse-User`` / ``X-ClickHouse-Key`` headers, so
they never appear in a URL that a proxy, a server log or an exception
message could print. All of this works the same on clickhouse-server 18.16
(Debian 12's package, checked by tests/integration/test_clickhouse_sink.py)
and on current releases.

The table holds one row per record (:data:`CREATE_TABLE` is the schema,
docs/sinks/clickhouse.md explains it). It uses only types both 18.16 and
current releases accept: no DateTime64, Map or LowCardinality (18.16 wants
an experimental setting for LowCardinality and knows neither of the others).
``time`` is DateTime (seconds) with the nanoseconds beside it in ``time_ns``,
as SLS keeps them.

Every answer becomes a :class:`~receiver.deliver.worker.SendOutcome` by
:func:`classify`, from ClickHouse's exception code: the
``X-ClickHouse-Exception-Code`` header of newer servers, else the
``Code: NNN`` that every release puts at the start of the error body (18.16
sends no such header). Data is given up on (``permanent``, dead-lettered and
replayable) only when the rows themselves were refused; a wrong password, a
missing database or table, a full server, a schema that lacks our columns
all keep the group in the spool until someone fixes the cause.

Plain MergeTree does not de-duplicate: a group resent after a crash inside a
send is stored twice. Its rows carry ``pack_id`` and ``pack_row`` (the row's
index in its group), which are the same on every resend, so duplicates can
be found and dropped at query time (``LIMIT 1 BY pack_id, pack_row``); the
docs say what ClickHouse offers beyond that.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import json.encoder
import logging
import math
import os
import re
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from formats.columns import columns_of
from formats.streamlog import STREAMLOG_TAG
from receiver.config import ClickHouseSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.worker import OutcomeKind, SendOutcome
from receiver.secrets import read_private_file, redact_url

__all__ = [
    "AUTH_CODES",
    "CREATE_TABLE",
    "NOT_DELIVERABLE_CODES",
    "PASSWORD_ENV",
    "PERMANENT_CODES",
    "QUOTA_CODES",
    "Classified",
    "ClickHouseConfigError",
    "ClickHouseSink",
    "classify",
    "clickhouse_payload",
    "create_table_sql",
    "encode_rows",
    "exception_code",
    "is_identifier",
]

log = logging.getLogger("receiver.deliver")

PASSWORD_ENV = "CLICKHOUSE_PASSWORD"
"""Where the password comes from when ``password_file`` is not set."""

CREATE_TABLE = """\
CREATE TABLE IF NOT EXISTS {table}
(
    time DateTime,
    time_ns UInt32,
    host String,
    app String,
    severity Int8,
    facility Int8,
    message String,
    source String,
    client_ip String,
    tag String,
    field_keys Array(String),
    field_values Array(String),
    flags Array(String),
    user_defined_id String,
    machine_group String,
    receive_time DateTime,
    hostname String,
    pack_id String,
    pack_row UInt32
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (host, app, time)"""
"""The table the sink creates (``{table}`` is the quoted ``db.table``).

Daily partitions because 18.16 has no TTL: retention is ``ALTER TABLE ...
DROP PARTITION 20240131``, one cheap statement per day. ORDER BY follows
the queries operators run: one host's or one program's lines over a time range.
"""

# ClickHouse exception codes (src/Common/ErrorCodes.cpp), by what they mean for a group.
AUTH_CODES = frozenset({
    164,  # READONLY: the user's profile may not write
    192,  # UNKNOWN_USER (before 20.x)
    193,  # WRONG_PASSWORD (before 20.x)
    194,  # REQUIRED_PASSWORD
    195,  # IP_ADDRESS_NOT_ALLOWED
    497,  # ACCESS_DENIED: no INSERT / CREATE grant (RBAC, 20.x on)
    516,  # AUTHENTICATION_FAILED (20.x on: unknown user and wrong password alike)
})
NOT_DELIVERABLE_CODES = frozenset({
    8,  # THERE_IS_NO_COLUMN
    16,  # NO_SUCH_COLUMN_IN_TABLE: the table is not the schema we write
    47,  # UNKNOWN_IDENTIFIER
    60,  # UNKNOWN_TABLE
    81,  # UNKNOWN_DATABASE
    115,  # UNKNOWN_SETTING
})
QUOTA_CODES: Mapping[int, float] = {
    # code: seconds to wait at least (ClickHouse sends no Retry-After of its own)
    173: 5.0,  # CANNOT_ALLOCATE_MEMORY
    201: 60.0,  # QUOTA_EXPIRED / QUOTA_EXCEEDED: the user's quota interval must pass
    202: 1.0,  # TOO_MANY_SIMULTANEOUS_QUERIES
    241: 5.0,  # MEMORY_LIMIT_EXCEEDED
    243: 30.0,  # NOT_ENOUGH_SPACE
    252: 10.0,  # TOO_MANY_PARTS: merges must catch up; ClickHouse's own advice is to insert less often
}
PERMANENT_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    33,  # CANNOT_READ_ALL_DATA
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA (but "Unknown field": the table lacks a column, see classify)
    131,  # TOO_LARGE_STRING_SIZE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    354,  # CANNOT_DECOMPRESS (the gzip body arrived damaged)
})

MAX_RETRY_AFTER_SECONDS = 3600.0
"""A longer Retry-After (from a proxy in front) is cut to this."""
_MAX_MESSAGE_CHARS = 300
_MAX_PASSWORD_FILE_BYTES = 4096
_MAX_DATETIME = 2**32 - 1
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
_CODE_IN_BODY = re.compile(rb"Code:\s*(\d{1,6})")
_json_string: Callable[[str], str] = json.encoder.encode_basestring
"""A str as a JSON string literal, non-ASCII kept: what ``json.dumps(ensure_ascii=False)`` uses."""
_GZIP_LEVEL = 1  # JSON rows shrink ~8x even so; higher levels cost CPU the delivery process needs


class ClickHouseConfigError(ValueError):
    """The sink's configuration cannot work (a bad name, URL or password file); the message says the fix."""


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a plain ClickHouse identifier (letters, digits, ``_``; not starting with a digit).

    ClickHouse accepts other names in backquotes, but then every query an
    operator types must quote them, and a ``.`` would read as ``db.table``:
    refusing them costs nothing and prevents both.
    """
    return _IDENTIFIER.fullmatch(name) is not None


def _quoted(database: str, table: str) -> str:
    return f"`{database}`.`{table}`"


def create_table_sql(database: str, table: str) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement for ``database.table`` (both must be identifiers)."""
    for what, name in (("database", database), ("table", table)):
        if not is_identifier(name):
            raise ClickHouseConfigError(f"ClickHouse {what} name {name!r} is not a plain identifier")
    return CREATE_TABLE.format(table=_quoted(database, table))


# -- rows ----------------------------------------------------------------------


def encode_rows(group: Group) -> bytes:
    """The group as JSONEachRow: one JSON object a line, UTF-8, in the column order of :data:`CREATE_TABLE`.

    Times are numbers (seconds since the epoch), which ClickHouse reads as
    such whatever the server's time zone; a string would be read in that zone.
    Rows are formatted from JSON-escaped strings rather than ``json.dumps``
    of a dict per row, which took half again as long (this loop is most of
    the sink's CPU): the group's own columns are encoded once, and so is
    each distinct key list (records of one layout share theirs).
    """
    tags = dict(group.tags)
    receive_time = tags.get("__receive_time__", "")
    shared = json.dumps(
        {
            "client_ip": tags.get("__client_ip__", group.client_ip),
            "user_defined_id": tags.get("__user_defined_id__", ""),
            "machine_group": tags.get("__machine_group__", ""),
            "receive_time": _clamp(int(receive_time)) if receive_time.isdigit() else 0,
            "hostname": tags.get("__hostname__", ""),
            "pack_id": tags.get("__pack_id__", group.pack_id),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    tail = "," + shared[1:]  # the shared object without its "{", ending each row
    quote = _json_string
    key_lists: dict[tuple[str, ...], str] = {}
    lines = []
    for index, record in enumerate(group.records):
        host, app, severity, facility, message = columns_of(record)
        keys = key_lists.get(record.keys)
        if keys is None:
            keys = key_lists[record.keys] = ",".join(map(quote, record.keys))
        time_ns = record.time_ns if 0 <= record.time_ns < 1_000_000_000 else 0
        lines.append(
            f'{{"time":{_clamp(record.time)},"time_ns":{time_ns},"host":{quote(host)},"app":{quote(app)},'
            f'"severity":{severity},"facility":{facility},"message":{quote(message)},'
            f'"source":{quote(record.source)},"tag":{quote(record.tags.get(STREAMLOG_TAG, ""))},'
            f'"field_keys":[{keys}],"field_values":[{",".join(map(quote, record.values))}],'
            f'"flags":[{",".join(map(quote, record.flags))}],"pack_row":{index}{tail}'
        )
    lines.append("")
    # A lone surrogate cannot come from the parsers (they decode with replacement); "replace"
    # makes sure one from elsewhere costs a "?" instead of the whole group.
    return "\n".join(lines).encode("utf-8", "replace")


def _clamp(seconds: int) -> int:
    """DateTime holds 1970..2106: a time outside is pinned to the edge instead of failing the group."""
    return 0 if seconds < 0 else min(seconds, _MAX_DATETIME)


def clickhouse_payload(config: ClickHouseSinkConfig, group: Group) -> bytes:
    """The body of ``group``'s INSERT: its rows gzipped, what worker processes make (``Group.payload``).

    ``config`` is not needed today (every ClickHouse sink encodes alike); it
    keeps the signature every sink's encoder has. The bytes are the same for
    the same group (gzip without a time stamp), like the rows themselves.
    """
    del config
    return zlib.compress(encode_rows(group), _GZIP_LEVEL, wbits=31)  # wbits 31: gzip framing, mtime 0


# -- answers -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Classified:
    """One ClickHouse answer: its kind, exception code (None if it had none), a loggable message."""

    kind: OutcomeKind
    code: int | None = None
    message: str = ""
    retry_after_seconds: float | None = None


def exception_code(headers: Mapping[str, str], body: bytes) -> int | None:
    """ClickHouse's exception code: the ``X-ClickHouse-Exception-Code`` header, else ``Code: NNN`` in the body."""
    for key, value in headers.items():
        if str(key).lower() == "x-clickhouse-exception-code" and str(value).strip().isdigit():
            return int(str(value).strip())
    match = _CODE_IN_BODY.search(body[:4096])
    return int(match.group(1)) if match else None


def classify(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    """What one HTTP answer means for the group; never raises.

    The exception code decides when there is one, the HTTP status otherwise
    (a proxy in front answers without a code). 18.16 answers 401 for
    authentication, 404 for a missing table or database, 400 or 500 for
    refused data; newer releases use 401/403/404/400/500 much the same way.
    """
    try:
        return _classify(status, headers, body)
    except Exception as e:  # a bug here must not lose data: retrying is safe
        return Classified("retry", None, f"unreadable answer (HTTP {status}): {type(e).__name__}")


def _classify(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    if 200 <= status < 300:
        return Classified("ok")
    code = exception_code(headers, body)
    message = _message(body)
    retry_after = _retry_after(headers)
    if code is not None:
        if code in AUTH_CODES:
            return Classified("auth", code, message, retry_after)
        if code in NOT_DELIVERABLE_CODES or (code == 117 and "Unknown field" in message):
            return Classified("not-deliverable", code, message, retry_after)
        if code in QUOTA_CODES:
            return Classified("quota", code, message, max(QUOTA_CODES[code], retry_after or 0.0))
        if code in PERMANENT_CODES:
            return Classified("permanent", code, message)
    if status == 429:
        return Classified("quota", code, message, retry_after)
    if status in (401, 403):
        return Classified("auth", code, message, retry_after)
    if 300 <= status < 400:
        # Never followed: the credentials would go with the request to wherever it points.
        location = next((str(v) for k, v in headers.items() if str(k).lower() == "location"), "")
        where = redact_url(location) if location else "elsewhere"
        return Classified(
            "not-deliverable", code,
            f"redirected to {where}; redirects are not followed (the credentials would follow them): "
            "set url to the server's own address",
        )
    if status == 404:  # a proxy's "no such path": configuration, not data
        return Classified("not-deliverable", code, message, retry_after)
    if status == 413:  # the same bytes would be refused again: kept as a dead letter, as HTTP does
        return Classified("permanent", code, message or "request body too large")
    if 400 <= status < 500 and status != 408:
        return Classified("permanent", code, message)
    # 5xx with an unknown code, 408: nothing says the rows are at fault.
    return Classified("retry", code, message, retry_after)


def _message(body: bytes) -> str:
    """The error text on one line, without 18.16's ``e.displayText() =`` / ``e.what()`` wrapping."""
    text = body[: _MAX_MESSAGE_CHARS * 4].decode("utf-8", "replace")
    text = text.replace("e.displayText() = ", "")
    text = re.sub(r",?\s*e\.what\(\) = \S+\s*$", "", text.strip())
    text = "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
    return text[:_MAX_MESSAGE_CHARS]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    seconds: float | None = None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is not None:
            seconds = when.timestamp() - time.time()
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


# -- credentials ---------------------------------------------------------------


def _read_password_file(path: Path) -> str:
    """The password: the file's first line, from a file only its owner may read."""
    data = read_private_file(
        path, what="ClickHouse password file", max_bytes=_MAX_PASSWORD_FILE_BYTES, error=ClickHouseConfigError
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ClickHouseConfigError(f"ClickHouse password file {path} is not UTF-8 text") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


def _check_url(url: str) -> str:
    # The URL is shown redacted in every message: its query or user information may hold a password.
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClickHouseConfigError(f"ClickHouse url {shown} must be http:// or https:// with a host, like http://127.0.0.1:8123")
    if parts.username is not None or parts.password is not None:
        raise ClickHouseConfigError(
            "ClickHouse url must not hold credentials (user:password@): set user, and the password in "
            f"password_file or {PASSWORD_ENV}"
        )
    if parts.query or parts.fragment:
        raise ClickHouseConfigError(
            f"ClickHouse url {shown} must have no query or fragment: the sink sets the query, and a password "
            f"belongs in password_file or {PASSWORD_ENV}"
        )
    return url if parts.path else url + "/"


# -- the sink ------------------------------------------------------------------


class ClickHouseSink:
    """Inserts each group into its destination table (``group.destination``) of ``config.database``."""

    def __init__(self, config: ClickHouseSinkConfig) -> None:
        for what, name in (("database", config.database), ("table", config.table)):
            if not is_identifier(name):
                raise ClickHouseConfigError(
                    f"sink {config.name!r}: ClickHouse {what} {name!r} is not a plain identifier: "
                    'use letters, digits and "_", not starting with a digit'
                )
        self.name = config.name
        self.config = config
        self.max_records = config.max_records
        self.max_bytes = config.max_bytes
        self._url = _check_url(config.url)
        self._password = self._load_password()
        self._session = requests.Session()
        self._created: set[str] = set()
        """Tables this sink has created (or found) since it started."""

    def __repr__(self) -> str:  # the password stays out
        c = self.config
        return f"ClickHouseSink(name={self.name!r}, url={c.url!r}, table={c.database}.{c.table}, user={c.user!r})"

    def _load_password(self) -> bytes | None:
        """The password as header bytes (UTF-8: ClickHouse compares bytes), or None for none."""
        path = self.config.password_file
        if path is not None:
            password, where = _read_password_file(path), f"password file {path}"
        else:
            env = os.environ.get(PASSWORD_ENV)
            if env is None:
                return None
            password, where = env, f"${PASSWORD_ENV}"
        if password != password.strip() or any(c in password for c in "\r\n\0"):
            # HTTP header values cannot carry these; requests would quote the value in its error.
            raise ClickHouseConfigError(
                f"the ClickHouse password in {where} has leading or trailing whitespace or a control "
                "character, which an HTTP header cannot carry: change the password"
            )
        return password.encode("utf-8")

    def _headers(self) -> dict[str, str | bytes]:
        """Credentials as headers: bytes, so a non-ASCII user or password travels as UTF-8."""
        headers: dict[str, str | bytes] = {"X-ClickHouse-User": self.config.user.encode("utf-8")}
        if self._password is not None:
            headers["X-ClickHouse-Key"] = self._password
        return headers

    def send(self, group: Group) -> SendOutcome:
        table = group.destination or self.config.table
        if not is_identifier(table):
            return SendOutcome(
                "not-deliverable",
                f"route destination {table!r} is not a plain ClickHouse table name "
                '(letters, digits and "_"): fix the route\'s destination',
            )
        if self.config.create_table and table not in self._created:
            outcome = self._create(table)
            if outcome is not None:
                return outcome
        query = f"INSERT INTO {_quoted(self.config.database, table)} FORMAT JSONEachRow"
        body = group.payload if group.payload is not None else clickhouse_payload(self.config, group)
        headers = self._headers()
        headers["Content-Encoding"] = "gzip"  # 18.16 and current releases inflate request bodies
        outcome, code = self._post({"query": query}, body, headers)
        if code == 60 and table in self._created:
            # Dropped since we created it: create it again on the next attempt.
            self._created.discard(table)
            return SendOutcome("retry", outcome.reason + "; it will be created again")
        return outcome

    def _create(self, table: str) -> SendOutcome | None:
        """Create ``table`` if it does not exist; None when done, else why not."""
        sql = create_table_sql(self.config.database, table)
        outcome, _ = self._post({}, sql.encode(), self._headers())
        if outcome.kind != "ok":
            hint = "; or create it yourself (docs/sinks/clickhouse.md) and set create_table = false"
            return dataclasses.replace(outcome, reason=f"creating table {self.config.database}.{table}: {outcome.reason}{hint}")
        self._created.add(table)
        log.info("%s: table %s.%s is ready (CREATE TABLE IF NOT EXISTS)", self.name, self.config.database, table)
        return None

    def _post(self, params: dict[str, str], body: bytes, headers: dict[str, str | bytes]) -> tuple[SendOutcome, int | None]:
        """One request: its outcome, and ClickHouse's exception code if it sent one."""
        try:
            try:
                response = self._session.post(
                    self._url, params=params, data=body, headers=headers, timeout=self.config.timeout_seconds,
                    allow_redirects=False,
                )
            except requests.ConnectionError as e:
                if not (e.args and isinstance(e.args[0], urllib3.exceptions.ProtocolError)):
                    raise
                # "Connection aborted" before any answer: mostly a pooled connection the server had
                # just closed (ClickHouse's keep_alive_timeout is a few seconds). Resending at once
                # duplicates nothing a later retry would not, and spares a backoff and a warning.
                response = self._session.post(
                    self._url, params=params, data=body, headers=headers, timeout=self.config.timeout_seconds,
                    allow_redirects=False,
                )
        except requests.RequestException as e:
            # requests' messages name the URL (no credentials: they are in headers) and the cause.
            return SendOutcome("retry", f"{type(e).__name__}: {_first_line(e)}"), None
        except Exception as e:  # never raise from send; the text might quote a header: type only
            return SendOutcome("retry", f"request failed: {type(e).__name__}"), None
        answer = classify(response.status_code, response.headers, response.content)
        if answer.kind == "ok":
            return SendOutcome("ok"), None
        code = f", ClickHouse code {answer.code}" if answer.code is not None else ""
        reason = f"HTTP {response.status_code}{code}: {answer.message}" + _hint(answer, self.config)
        if answer.kind == "auth" and self.config.password_file is not None:
            try:
                self._password = self._load_password()  # a rotated password is picked up
            except ClickHouseConfigError as e:
                reason += f"; re-reading the password failed: {e}"
        return SendOutcome(answer.kind, reason, answer.retry_after_seconds), answer.code

    def close(self) -> None:
        self._session.close()


def _hint(answer: Classified, config: ClickHouseSinkConfig) -> str:
    """What the operator can do about an answer, for the reason that gets logged."""
    if answer.kind == "auth":
        source = f"password_file {config.password_file}" if config.password_file else f"${PASSWORD_ENV}"
        return f" (check user {config.user!r} and the password in {source}, and its INSERT/CREATE grants)"
    if answer.code == 81:
        return f" (create it: CREATE DATABASE {config.database})"
    if answer.code == 60 and not config.create_table:
        return " (create the table (docs/sinks/clickhouse.md) or set create_table = true)"
    if answer.kind == "not-deliverable" and answer.code in (8, 16, 47, 117):
        return " (the table lacks columns this sink writes: ALTER TABLE ... ADD COLUMN, see docs/sinks/clickhouse.md)"
    if answer.kind == "permanent" and answer.code is None and "too large" in answer.message.lower():
        return (f" (lower max_bytes, now {config.max_bytes}, or max_records, or raise the limit of what is "
                "in front of ClickHouse; then replay the dead letter)")
    if answer.code == 241:
        return f" (lower max_records, now {config.max_records}, or raise the user's max_memory_usage)"
    return ""


def _first_line(error: Any) -> str:
    text = str(error)
    return text.splitlines()[0][:_MAX_MESSAGE_CHARS] if text else type(error).__name__
