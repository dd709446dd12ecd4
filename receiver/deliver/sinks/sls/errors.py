"""What an SLS answer means for delivery: one :class:`Outcome` per response, never an exception.

The classes follow sls.md's error table, and the guiding rule is that data
is only given up on ("permanent": dead-lettered, still inspectable and
replayable) when the batch itself is at fault. Everything about who we are,
where we write, how fast or when, keeps the batch in the spool:

- ``quota``: write quota exceeded (403 ``WriteQuotaExceed`` /
  ``ShardWriteQuotaExceed``, HTTP 429): back off longer, lower concurrency;
- ``clock-skew``: ``RequestTimeExpired``: correct the clock offset from the
  server's time and retry at once;
- ``auth``: 401, signature and AccessKey errors, expired STS tokens, and any
  other 403 (a RAM policy that denies PutLogs, a suspended account): reload
  credentials, back off, alarm;
- ``not-deliverable``: 404 (``ProjectNotExist``, ``LogStoreNotExist``): waits
  for a configuration change, in the spool;
- ``retry``: 5xx, 408, and anything not understood (a status outside
  HTTP): transient until shown otherwise;
- a redirect (3xx) is never followed, since the signed request and its STS
  token would go with it: ``not-deliverable``, naming where it pointed;
- ``permanent``: the other 4xx (``PostBodyInvalid``, ``InvalidParameter``,
  ``PostBodyTooLarge``...): the same bytes would be refused again.

Bodies are read defensively: SLS sends ``{"errorCode", "errorMessage"}``,
but a proxy or load balancer may send HTML, nothing, or garbage.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import json
import math
from collections.abc import Mapping
from typing import Literal

from receiver.config.secrets import redact_url

__all__ = [
    "AUTH_CODES",
    "CLOCK_SKEW_CODES",
    "MAX_RETRY_AFTER_SECONDS",
    "NOT_DELIVERABLE_CODES",
    "QUOTA_CODES",
    "RETRY_CODES",
    "Outcome",
    "OutcomeKind",
    "classify",
]

OutcomeKind = Literal["ok", "retry", "quota", "auth", "clock-skew", "not-deliverable", "permanent"]
"""The same vocabulary as :class:`receiver.deliver.outcomes.SendOutcome` (kept here so this package
imports nothing of the delivery process)."""

QUOTA_CODES = frozenset({"WriteQuotaExceed", "ShardWriteQuotaExceed"})
CLOCK_SKEW_CODES = frozenset({"RequestTimeExpired"})
AUTH_CODES = frozenset({
    "Unauthorized",
    "SignatureNotMatch",
    "InvalidAccessKeyId",
    "InvalidAccessKeyId.NotFound",
    "SecurityTokenExpired",
    "SecurityToken.Expired",
})
NOT_DELIVERABLE_CODES = frozenset({"ProjectNotExist", "LogStoreNotExist"})
RETRY_CODES = frozenset({"InternalServerError", "ServerBusy", "RequestTimeout"})

MAX_RETRY_AFTER_SECONDS = 3600.0
"""A longer Retry-After is cut to this: a bad header must not stall a sink for days."""

_MAX_MESSAGE_CHARS = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One answer, classified.

    ``code`` is SLS's ``errorCode`` (empty when the body had none) and
    ``message`` its ``errorMessage``, or a printable excerpt of a body that
    was not SLS JSON, cut to a few hundred characters; both are safe to log.
    ``server_time`` is the response's ``Date`` (else ``x-log-time``), set for
    ``clock-skew``; ``retry_after_seconds`` comes from Retry-After.
    """

    kind: OutcomeKind
    code: str = ""
    message: str = ""
    retry_after_seconds: float | None = None
    server_time: _dt.datetime | None = None
    request_id: str = ""
    """``x-log-requestid``: what Alibaba support asks for."""


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: _dt.datetime | None = None,
) -> Outcome:
    """Classify one HTTP answer to a PutLogs request; never raises.

    Header names are matched case-insensitively (``headers`` may be a plain
    dict). ``now`` is only the fallback reference for a Retry-After given as a
    date when the response has no ``Date``; it defaults to the wall clock.
    """
    try:
        return _classify(status, headers, body, now)
    except Exception as e:  # the contract is "never raises": a bug here must not drop data
        return Outcome("retry", "", f"unreadable answer (HTTP {status}): {type(e).__name__}")


def _classify(status: int, headers: Mapping[str, str], body: bytes, now: _dt.datetime | None) -> Outcome:
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    request_id = _printable(lower.get("x-log-requestid", ""))[:100]
    if 200 <= status < 300:
        return Outcome("ok", request_id=request_id)
    if 300 <= status < 400:
        # Never followed: the request is signed for this endpoint and may carry an STS token.
        location = lower.get("location", "")
        where = redact_url(location) if location else "elsewhere"
        return Outcome(
            "not-deliverable", "",
            f"redirected to {where}; redirects are not followed (the signature and token would follow "
            "them): set endpoint to the address that answers",
            request_id=request_id,
        )
    code, message = _error_body(body)
    server_time = _server_time(lower)
    retry_after = _retry_after(lower.get("retry-after"), server_time or now)
    kind = _kind(status, code)
    return Outcome(
        kind,
        code,
        message,
        retry_after,
        server_time if kind == "clock-skew" else None,
        request_id,
    )


def _kind(status: int, code: str) -> OutcomeKind:
    # The code decides first: it is what SLS means; the status is the fallback.
    if code in QUOTA_CODES:
        return "quota"
    if code in CLOCK_SKEW_CODES:
        return "clock-skew"
    if code in AUTH_CODES or code.startswith(("InvalidAccessKeyId", "SecurityToken")):
        return "auth"
    if code in NOT_DELIVERABLE_CODES:
        return "not-deliverable"
    if code in RETRY_CODES or status >= 500 or status == 408:
        return "retry"
    if status == 429:
        return "quota"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not-deliverable"
    if 400 <= status < 500:
        return "permanent"
    return "retry"  # 1xx, nonsense: nothing says the batch is at fault


def _error_body(body: bytes) -> tuple[str, str]:
    """``(errorCode, errorMessage)`` of SLS's JSON, else ``("", excerpt of the body)``."""
    if not body:
        return "", ""
    head = bytes(body[: 64 * 1024])
    try:
        parsed = json.loads(head)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("errorCode")
        message = parsed.get("errorMessage")
        if isinstance(code, str) or isinstance(message, str):
            return (
                _printable(code if isinstance(code, str) else "")[:100],
                _printable(message if isinstance(message, str) else "")[:_MAX_MESSAGE_CHARS],
            )
    text = head[: _MAX_MESSAGE_CHARS * 4].decode("utf-8", "replace")
    excerpt = _printable(" ".join(text.split()))[:_MAX_MESSAGE_CHARS]
    return "", excerpt


def _printable(text: str) -> str:
    """Control characters out: the text goes into one log line."""
    return "".join(c if c.isprintable() else " " for c in text).strip()


def _parse_http_date(value: str) -> _dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": UTC by RFC 5322
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed.astimezone(_dt.UTC)


def _server_time(headers: Mapping[str, str]) -> _dt.datetime | None:
    """The server's clock: the ``Date`` header, else ``x-log-time`` (seconds since the epoch)."""
    date = headers.get("date")
    if date:
        parsed = _parse_http_date(date)
        if parsed is not None:
            return parsed
    seconds = headers.get("x-log-time", "").strip()
    if seconds.isdigit():
        try:
            return _dt.datetime.fromtimestamp(int(seconds), _dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _retry_after(value: str | None, reference: _dt.datetime | None) -> float | None:
    """Retry-After in seconds (RFC 9110: delay-seconds or an HTTP date), clamped to [0, 1 h].

    A date is measured from the server's own ``Date`` when there is one, so
    our clock's error does not distort it.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = _parse_http_date(value)
        if when is None:
            return None
        base = reference if reference is not None else _dt.datetime.now(_dt.UTC)
        if base.tzinfo is None:
            base = base.replace(tzinfo=_dt.UTC)
        seconds = (when - base).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
