"""The control API: HTTP and JSON on a UNIX socket, for ``receiverctl``.

    GET /status    version, uptime, identities, machine groups, listeners,
                   spool, and each sink's state
    GET /stats     every counter, with its labels (ingest, spool, delivery)
    GET /senders   every source heard from, with its state and machine groups
    POST /reload   re-read the configuration file (as SIGHUP does): 200 with
                   the changes made, or 409 with why the running one stays
    POST /flush    commit what has been read but not committed yet; answers
                   once it is on disk

A UNIX socket of mode 0660, not a TCP port: who may administer the receiver
is decided by file permissions (the socket's owner and group), with no
password to keep. The socket file is removed at stop; a stale one left by a
crash is replaced at start, unless a receiver still answers on it.

The server side is :func:`listen_control` (twisted.web, in the daemon);
the client side is :func:`get_json` (stdlib, in ``receiverctl``).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from receiver import __version__
from receiver.config.identity import Identities, MachineGroups
from receiver.deliver.stats import COUNTERS, read_stats
from receiver.runtime.unix_http import SocketPathTakenError, UnixHTTPConnection, remove_stale_socket
from receiver.service.reload import ReloadError

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IListeningPort

    from receiver.config.model import Config, ListenerConfig
    from receiver.deliver.supervisor import DeliverySupervisor
    from receiver.spool.gate import BackpressureGate
    from receiver.spool.store import SpoolStore
    from receiver.telemetry.events import Telemetry

__all__ = ["ControlError", "ControlResource", "ControlledService", "get_json", "listen_control"]

log = logging.getLogger("receiver")

SOCKET_MODE = 0o660


class ControlError(Exception):
    """The daemon cannot be asked: the message says why, in one line."""


class ControlledService(Protocol):
    """What the control API reads and asks of the running daemon
    (:class:`~receiver.service.lifecycle.ReceiverService`)."""

    config: Config
    telemetry: Telemetry
    ports: list[tuple[ListenerConfig, IListeningPort]]
    store: SpoolStore | None
    gate: BackpressureGate
    delivery: DeliverySupervisor | None
    started_monotonic: float

    def flush(self) -> Deferred[int]:
        """Fires with the frames committed since start, once what was read is committed."""

    def reload(self) -> Deferred[list[str]]:
        """Fires with the changes made, or fails with :class:`~receiver.service.reload.ReloadError`."""


class ControlResource(Resource):
    """The API of a running :class:`~receiver.service.lifecycle.ReceiverService`."""

    isLeaf = True

    def __init__(self, service: ControlledService) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request: Request) -> bytes:
        path = request.path.rstrip(b"/")
        if path == b"/status":
            body: Any = status_of(self._service)
        elif path == b"/stats":
            body = stats_of(self._service)
        elif path == b"/senders":
            body = senders_of(self._service)
        else:
            request.setResponseCode(404)
            body = {"error": f"no such endpoint {path.decode(errors='replace')}; there are /status, /stats and /senders"}
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, indent=None, separators=(",", ":")).encode() + b"\n"

    def render_POST(self, request: Request) -> bytes | int:
        request.setHeader(b"content-type", b"application/json")
        path = request.path.rstrip(b"/")
        if path not in (b"/reload", b"/flush"):
            request.setResponseCode(404)
            return b'{"error":"no such endpoint; there are POST /reload and POST /flush"}\n'

        def answer(status: int, body: Any) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.setResponseCode(status)
            request.write(json.dumps(body).encode() + b"\n")
            request.finish()

        def failed(failure: Any) -> None:
            if failure.check(ReloadError):
                answer(409, {"error": str(failure.value)})
            else:
                log.error("reload failed: %s", failure.getTraceback())
                answer(500, {"error": f"reload failed: {failure.getErrorMessage()}"})

        if path == b"/flush":
            self._service.flush().addCallbacks(lambda frames: answer(200, {"committed_frames": frames}), failed)
        else:
            self._service.reload().addCallbacks(lambda changes: answer(200, {"changes": changes}), failed)
        return NOT_DONE_YET


def status_of(service: ControlledService) -> dict[str, Any]:
    """What ``receiverctl status`` shows."""
    config = service.config
    telemetry = service.telemetry
    now_ns = time.time_ns()
    listeners = []
    for listener, port in service.ports:
        host: Any = port.getHost()
        opened = telemetry.value("receiver_connections_opened_total", listener=listener.name)
        closed = telemetry.value("receiver_connections_closed_total", listener=listener.name)
        listeners.append({
            "name": listener.name, "transport": listener.transport, "tls": listener.tls is not None,
            "address": host.host, "port": host.port, "format": listener.format, "connections": opened - closed,
            "frames": telemetry.value("receiver_frames_received_total", listener=listener.name),
        })
    spool: dict[str, Any] = {"directory": str(config.spool_directory)}
    cursors: dict[str, int] = {}
    if service.store is not None:
        meta = service.store.meta
        cursors = service.store.cursors()
        spool.update(
            segments=meta.segments, frames=meta.frames, stored_bytes=meta.stored_bytes,
            max_bytes=config.spool.max_bytes,
            oldest_age_seconds=(now_ns - meta.oldest_receive_time_ns) / 1e9 if meta.oldest_receive_time_ns else None,
            backpressure=sorted(service.gate.reasons),
        )
        next_seq = meta.next_seq
    else:
        next_seq = 1
    delivery = read_stats(config.state_directory) if service.delivery is not None else None
    reported = (delivery or {}).get("sinks") or {}
    sinks = []
    for sink in config.sinks:
        state = reported.get(sink.name, {})
        cursor = cursors.get(sink.name)
        backoff = state.get("backoff_until_ns")
        sinks.append({
            "name": sink.name, "type": sink.type,
            "lag_segments": None if cursor is None else max(0, next_seq - 1 - cursor),
            "delivered_records": state.get("delivered_records"),
            "last_success_ns": state.get("last_success_ns"),
            "last_error": state.get("last_error"),
            "retrying_for_seconds": (backoff - now_ns) / 1e9 if backoff and backoff > now_ns else None,
            "dead_lettered_records": state.get("dead_lettered_records"),
        })
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_seconds": time.monotonic() - service.started_monotonic,
        "config": config.source,
        "identities": list(Identities(config.identity.user_defined_id_file, clock=time.monotonic).current()),
        "machine_groups": [
            {"name": g.name, "networks": list(g.networks), "hostnames": list(g.hostnames)} for g in config.machine_groups
        ],
        "listeners": listeners,
        "spool": spool,
        "delivery": None if service.delivery is None else {
            "pid": service.delivery.pid, "restarts": service.delivery.restarts,
            "report_age_seconds": (now_ns - delivery["time_ns"]) / 1e9 if delivery and "time_ns" in delivery else None,
        },
        "sinks": sinks,
    }


def senders_of(service: ControlledService) -> dict[str, Any]:
    """What ``receiverctl senders`` shows. Machine groups by network only: hostnames are in the
    records, which delivery parses; the daemon does not."""
    groups = MachineGroups(service.config.machine_groups)
    return {"senders": service.telemetry.senders.snapshot(lambda peer: groups.of(peer, ""))}


def stats_of(service: ControlledService) -> dict[str, Any]:
    """What ``receiverctl stats`` shows: every counter with its labels."""
    counters = [
        {"name": name, "labels": dict(labels), "value": value}
        for (name, labels), value in sorted(service.telemetry.counters.items())
    ]
    delivery = read_stats(service.config.state_directory) if service.delivery is not None else None
    for sink, state in sorted(((delivery or {}).get("sinks") or {}).items()):
        for key in COUNTERS:
            counters.append({"name": f"sink_{key}", "labels": {"sink": sink}, "value": state.get(key, 0)})
    return {"counters": counters}


def listen_control(reactor: Any, service: ControlledService, path: Path) -> Any:
    """Serve the API on ``path`` (mode 0660); raises ControlError if another receiver answers there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        remove_stale_socket(path)  # left by a receiver that did not stop cleanly
    except SocketPathTakenError as e:
        if e.answering:
            raise ControlError(
                f"another receiver answers on {path}: two receivers must not share a state directory; "
                "stop it, or give this one its own [control] socket and state_directory"
            ) from None
        # Only a socket left by a crash is ours to remove: anything else at that path is someone's file.
        raise ControlError(
            f"{path} exists and is not a socket; the receiver removes only a stale control socket there. "
            "Move that file away, or set [control] socket to another path"
        ) from None
    site = Site(ControlResource(service))
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]  # receiverctl polls: no access log
    port = reactor.listenUNIX(str(path), site, mode=SOCKET_MODE, wantPID=False)
    os.chmod(path, SOCKET_MODE)  # mode= is applied before umask on some systems: say it again
    log.info("control API on %s", path)
    return port


def get_json(path: Path, endpoint: str, *, method: str = "GET", timeout: float = 10.0) -> Any:
    """``method endpoint`` of the daemon at ``path``, its JSON answer; ControlError in one line when it
    is not there or refuses (the error's text is the daemon's reason)."""
    if not path.exists():
        raise ControlError(f"no receiver is running with control socket {path} (no such file)")
    connection = UnixHTTPConnection(path, timeout)
    try:
        connection.request(method, endpoint)
        response = connection.getresponse()
        body = response.read()
    except ConnectionRefusedError:
        raise ControlError(f"no receiver is running with control socket {path} (connection refused)") from None
    except PermissionError:
        raise ControlError(
            f"not allowed to use {path}: run as its owner or a member of its group (mode 0660)"
        ) from None
    except (OSError, http.client.HTTPException) as e:
        raise ControlError(f"the receiver at {path} did not answer: {e}") from None
    finally:
        connection.close()
    if response.status != 200:
        try:
            reason = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            reason = body.decode(errors="replace").strip()
        raise ControlError(str(reason))
    return json.loads(body)
