"""The running receiver: spool and listeners, started and stopped in order.

Start: open the spool (a damaged database is moved aside, never a reason not
to start), start the writer (which checks old segments in the background),
bind every listener, then say ``receiver ready``.

Stop, as an explicit chain (not children stopped all at once): stop
accepting; drain the UDP sockets; close TCP connections gracefully (FIN,
read until the peers close or ``drain_seconds`` pass, drain, close); commit
everything read; close the spool.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import DeferredList, inlineCallbacks, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from formats.streamlog import format_table
from receiver.config.file import ConfigError, load_config
from receiver.config.model import Config, ListenerConfig, TlsConfigError, default_config
from receiver.config.snapshot import write_snapshot
from receiver.deliver.supervisor import DeliverySupervisor, delivery_command
from receiver.ingest.relp import RelpFactory
from receiver.ingest.tcp import StreamFactory
from receiver.ingest.tls import TlsServerContext, tls_server_factory
from receiver.ingest.udp import MAX_DATAGRAM_BYTES, DatagramReceiver
from receiver.runtime.process import configure_logging
from receiver.service.control import ControlError, listen_control
from receiver.service.guard import EXIT_OVER_MEMORY_LIMIT, ResourceGuard, anonymous_bytes_of_tree
from receiver.service.metrics import MetricsResource
from receiver.service.reload import ReloadError, delivery_step, plan_reload
from receiver.service.systemd import Notifier
from receiver.spool.gate import BackpressureGate
from receiver.spool.store import SpoolDamagedError, SpoolStore
from receiver.spool.writer import SpoolWriter
from receiver.telemetry.events import Telemetry

__all__ = ["ListenError", "ReceiverService"]

log = logging.getLogger("receiver")

_LISTEN_BACKLOG = 4096


class ListenError(RuntimeError):
    """A listener could not be bound; the message names it and what to do."""


class ReceiverService:
    """Owns the spool writer, the listeners and their order of start and stop."""

    def __init__(
        self, config: Config, reactor: Any, telemetry: Telemetry | None = None, *, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.reactor = reactor
        self.telemetry = telemetry or Telemetry(
            clock=time.monotonic, repeat_interval_seconds=config.logging.repeat_interval_seconds
        )
        self.gate = BackpressureGate(on_change=self.telemetry.backpressure)
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="spool-writer")
        self.store: SpoolStore | None = None
        self.writer: SpoolWriter | None = None
        self.ports: list[tuple[ListenerConfig, IListeningPort]] = []
        self.stream_factories: list[StreamFactory] = []
        self.datagram_receivers: list[DatagramReceiver] = []
        self.delivery: DeliverySupervisor | None = None
        self.stopped = False
        self.metrics_port: IListeningPort | None = None
        self.exit_status = 0
        """What ``receiver run`` exits with: 3 when the guard stopped it over its memory limit."""
        self._guard_loop: Any = None
        self.notifier = Notifier()
        self._notify_loops: list[Any] = []
        self.started_monotonic = time.monotonic()
        self.control_port: IListeningPort | None = None
        self._delivery_restarting = False
        self._last_status = (time.monotonic(), 0)

    def start(self) -> None:
        """Open the spool and bind every listener; raises ListenError naming a listener that cannot bind."""
        config = self.config
        # First: if another receiver answers on this control socket, it also owns this spool.
        try:
            self.control_port = listen_control(self.reactor, self, config.control_socket)
        except (ControlError, CannotListenError, OSError) as e:
            raise ListenError(f"control API: {e}") from e
        try:
            self.store = SpoolStore(config.spool_directory, sync=config.spool.sync)
        except SpoolDamagedError as e:
            log.error("%s", e)
            self.store = SpoolStore(config.spool_directory, sync=config.spool.sync)
        self._pool.start()
        self.writer = SpoolWriter(
            self.store,
            config.spool,
            clock=self.reactor,
            run_in_thread=lambda work: deferToThreadPool(self.reactor, self._pool, work),
            gate=self.gate,
            telemetry=self.telemetry,
        )
        self.writer.start().addErrback(lambda f: log.error("checking the spool failed: %s", f.getErrorMessage()))
        versions = tuple(format_table(config.parse.streamlog_formats))
        for listener in config.listeners:
            self._listen(listener, versions)
        if config.deliver.enabled:
            self.delivery = DeliverySupervisor(self.reactor, delivery_command(self._write_snapshot(config)))
            self.delivery.start()
        if config.metrics.enabled:
            self._serve_metrics()

    def _write_snapshot(self, config: Config) -> Path:
        """Write the configuration the daemon runs where the delivery process reads it."""
        return write_snapshot(config, config.state_directory)

    def _serve_metrics(self) -> None:
        """The Prometheus endpoint; a port it cannot bind is an error in the log, never a reason not to receive."""
        metrics = self.config.metrics
        site = Site(MetricsResource(self))
        site.noisy = False
        site.log = lambda request: None  # type: ignore[method-assign]  # scrapes every few seconds: no access log
        try:
            self.metrics_port = self.reactor.listenTCP(metrics.port, site, interface=metrics.address)
        except CannotListenError as e:
            log.error(
                "metrics: cannot listen on [%s]:%d (%s); receiving goes on without metrics. Set [metrics] "
                "port to a free one, or enabled = false", metrics.address, metrics.port, e.socketError,
            )
            return
        address: Any = self.metrics_port.getHost()  # an IPv4Address or IPv6Address
        shown = f"[{address.host}]" if ":" in address.host else address.host
        log.info("metrics on http://%s:%d/metrics", shown, address.port)

    def announce_ready(self) -> None:
        """Say ``receiver ready``: listeners bound, spool open, and (called once the
        reactor runs) SIGTERM handled gracefully from this moment on."""
        assert self.store is not None
        meta = self.store.meta
        log.info(
            "receiver ready: %d listeners, spool %s (%d segments, %d frames held)",
            len(self.ports), self.config.spool_directory, meta.segments, meta.frames,
        )
        self.notifier.ready(self.status_line())
        self._notify_loops = self.notifier.start_loops(self.reactor, self.status_line)
        limits = self.config.limits
        if limits.memory_limit_bytes or limits.cpu_limit_percent or limits.delivery_memory_limit_bytes:
            guard = ResourceGuard(
                self.gate, memory_limit_bytes=limits.memory_limit_bytes, cpu_limit_percent=limits.cpu_limit_percent,
                on_over_memory=self._over_memory_limit, clock=time.monotonic,
                delivery_memory_limit_bytes=limits.delivery_memory_limit_bytes,
                delivery_memory=self._delivery_memory, on_delivery_over_memory=self._delivery_over_memory_limit,
                in_thread=lambda read: deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read),
            )
            self._guard_loop = guard.start(self.reactor)

    def _delivery_memory(self) -> int:
        pid = self.delivery.pid if self.delivery is not None else None
        return anonymous_bytes_of_tree(pid) if pid is not None else 0

    def _delivery_over_memory_limit(self, why: str) -> None:
        if self.delivery is None or self.delivery.pid is None or self._delivery_restarting:
            return  # already on its way: the next check sees the new process
        self.telemetry.delivery_restarted_over_memory(why)
        self._delivery_restarting = True

        def done(result: object) -> object:
            self._delivery_restarting = False
            return result

        self.delivery.restart().addBoth(done)

    def _over_memory_limit(self, why: str) -> None:
        log.error("%s", why)
        self.exit_status = EXIT_OVER_MEMORY_LIMIT
        self.reactor.stop()  # the graceful stop: everything read is committed first

    def status_line(self) -> str:
        """One line for ``systemctl status``: connections, rate, spool, delivery."""
        telemetry = self.telemetry
        connections = telemetry.value("receiver_connections_opened_total") - telemetry.value(
            "receiver_connections_closed_total"
        )
        now, frames = time.monotonic(), telemetry.value("receiver_spool_frames_committed_total")
        then, before = self._last_status
        self._last_status = (now, frames)
        rate = (frames - before) / (now - then) if now > then else 0.0
        spool = ""
        if self.store is not None:
            meta = self.store.meta
            spool = f"; spool {meta.frames:,} frames in {meta.segments:,} segments"
        delivery = "" if self.delivery is None else f"; delivery {'running' if self.delivery.pid else 'restarting'}"
        return (
            f"{len(self.ports)} listeners, {connections:,} connections, {rate:,.0f} frames/s, "
            f"{frames:,} frames committed{spool}{delivery}"
        )

    def _listen(self, listener: ListenerConfig, streamlog_versions: tuple[str, ...]) -> None:
        assert self.writer is not None
        try:
            if listener.transport in ("tcp", "relp"):
                tls = self._tls_context(listener)
                factory_class = RelpFactory if listener.transport == "relp" else StreamFactory
                factory = factory_class(
                    listener, writer=self.writer, gate=self.gate, telemetry=self.telemetry,
                    clock=self.reactor, streamlog_versions=streamlog_versions, tls=tls,
                )
                factory.noisy = False
                accepting = factory if tls is None else tls_server_factory(tls, factory, self.reactor)
                accepting.noisy = False
                port = self.reactor.listenTCP(
                    listener.port, accepting, backlog=_LISTEN_BACKLOG, interface=listener.address
                )
                self.stream_factories.append(factory)
            else:
                receiver = DatagramReceiver(listener, writer=self.writer, telemetry=self.telemetry, clock=self.reactor)
                port = self.reactor.listenUDP(
                    listener.port, receiver, interface=listener.address, maxPacketSize=MAX_DATAGRAM_BYTES
                )
                self.datagram_receivers.append(receiver)
        except CannotListenError as e:
            raise ListenError(
                f"cannot listen on {listener.transport} [{listener.address}]:{listener.port} "
                f"(listener {listener.name!r}): {e.socketError}; is another receiver or syslog daemon "
                "using that port? Ports below 1024 need CAP_NET_BIND_SERVICE."
            ) from e
        host = port.getHost()
        self.ports.append((listener, port))
        self.telemetry.listening(listener.name, listener.transport, host.host, host.port)

    def _tls_context(self, listener: ListenerConfig) -> TlsServerContext | None:
        """The listener's TLS context (its files read and checked), or None for a plain listener."""
        if listener.tls is None:
            return None
        try:
            context = TlsServerContext(listener.tls)
        except TlsConfigError as e:
            raise ListenError(f"listener {listener.name!r}: {e}") from e
        for warning in context.warnings:
            log.warning("listener %r: %s", listener.name, warning)
        return context

    def _reload_certificate(self, factory: StreamFactory, changes: list[str]) -> None:
        """Re-read a TLS listener's files: a renewed certificate serves new connections, open ones keep theirs."""
        assert factory.tls is not None
        before = factory.tls.fingerprint
        try:
            for warning in factory.tls.reload():
                log.warning("listener %r: %s", factory.config.name, warning)
        except TlsConfigError as e:
            log.error("reload: listener %r keeps its certificate: %s", factory.config.name, e)
            changes.append(f"listener {factory.config.name!r} certificate NOT reloaded: {e}")
            return
        if factory.tls.fingerprint != before:
            changes.append(f"listener {factory.config.name!r} certificate reloaded ({factory.tls.fingerprint})")

    @inlineCallbacks
    def _unlisten(self, listener: ListenerConfig) -> Any:
        """Stop one listener: no new connections; its open ones are read to the end and closed."""
        found = [(x, p) for x, p in self.ports if x.name == listener.name]
        for entry in found:
            self.ports.remove(entry)
            yield maybeDeferred(entry[1].stopListening)
        for factory in [f for f in self.stream_factories if f.config.name == listener.name]:
            self.stream_factories.remove(factory)
            yield factory.close_all(self.config.shutdown.drain_seconds)
        for receiver in [r for r in self.datagram_receivers if r.config.name == listener.name]:
            self.datagram_receivers.remove(receiver)
        log.info("stopped listening on %s (listener %r)", listener.transport, listener.name)

    @inlineCallbacks
    def flush(self) -> Any:
        """Commit what has been read and not yet committed; fires with the frames committed since start."""
        if self.writer is None or self.stopped:
            raise ReloadError("the receiver is stopping")
        yield self.writer.when_committed()
        return self.writer.committed_frames

    @inlineCallbacks
    def reload(self) -> Any:
        """Switch to the configuration file as it is now; fires with the list of changes made.

        Fails with :class:`ReloadError` (the running configuration stays) when the
        file does not load or a new listener cannot bind. Listeners that remain
        keep their connections; removed ones stop accepting and have their open
        connections read to the end; sinks, routes, identities and parsing take
        effect by restarting the delivery process, which resumes from its cursors.
        Settings a running daemon cannot change are reported, not applied.
        """
        if self.stopped:
            raise ReloadError("the receiver is stopping")
        old = self.config
        try:
            loaded = load_config(self.config_path).config if self.config_path is not None else default_config()
        except ConfigError as e:
            raise ReloadError(f"the configuration has errors; the running one stays:\n{e}") from e
        plan = plan_reload(old, loaded)
        new = plan.config
        changes: list[str] = []
        versions = tuple(format_table(new.parse.streamlog_formats))
        bound: list[ListenerConfig] = []
        for listener in plan.bind:
            try:
                self._listen(listener, versions)
            except ListenError as e:
                for done in bound:
                    yield self._unlisten(done)
                raise ReloadError(f"{e}; the running configuration stays") from e
            bound.append(listener)
            changes.append(f"listener {listener.name!r} added")
        still_named = {x.name for x in new.listeners}
        for listener in plan.unbind:
            yield self._unlisten(listener)
            if listener.name not in still_named:
                changes.append(f"listener {listener.name!r} removed")
        old_by_name = {x.name: x for x in old.listeners}
        for listener in plan.rebind:
            try:
                self._listen(listener, versions)
            except ListenError as e:
                log.error("reload: %s; listener %r keeps its old settings", e, listener.name)
                self._listen(old_by_name[listener.name], versions)
                new = dataclasses.replace(new, listeners=tuple(
                    old_by_name[x.name] if x.name == listener.name else x for x in new.listeners
                ))
                changes.append(f"listener {listener.name!r} NOT changed: {e}")
                continue
            changes.append(f"listener {listener.name!r} changed")
        rebuilt = {x.name for x in (*plan.bind, *plan.rebind)}  # these have new contexts already
        for factory in self.stream_factories:
            if factory.tls is not None and factory.config.name not in rebuilt:
                self._reload_certificate(factory, changes)
        if plan.logging_changed:
            configure_logging(new.logging.level)
            changes.append("logging changed")
        changes.extend(f"[{name}] changed: takes effect at the next restart" for name in plan.kept)
        step = delivery_step(old, new, running=self.delivery is not None)
        self.config = new
        if new.deliver.enabled:
            snapshot = self._write_snapshot(new)  # before delivery (re)starts: it reads this
        if step == "start":
            self.delivery = DeliverySupervisor(self.reactor, delivery_command(snapshot))
            self.delivery.start()
            changes.append("delivery started")
        elif step == "stop" and self.delivery is not None:
            yield self.delivery.stop()
            self.delivery = None
            changes.append("delivery stopped")
        elif step == "restart" and self.delivery is not None:
            yield self.delivery.restart()
            changes.append("delivery restarted with the new sinks, routes and parsing")
        log.info("reloaded %s: %s", new.source, "; ".join(changes) or "nothing changed")
        return changes

    @inlineCallbacks
    def stop(self) -> Any:
        """The graceful stop chain; fires when everything read is committed and the spool closed."""
        if self.stopped:
            return
        self.stopped = True
        started = time.monotonic()
        drain = self.config.shutdown.drain_seconds
        for loop in self._notify_loops:
            loop.stop()
        if self._guard_loop is not None and self._guard_loop.running:
            self._guard_loop.stop()
        self.notifier.stopping(f"stopping: committing what senders still send (up to {drain:g} s)")
        log.info("stopping: no new connections; reading what senders still send for up to %g s", drain)
        yield DeferredList([maybeDeferred(p.stopListening) for listener, p in self.ports if listener.transport != "udp"])
        drained = sum(r.drain() for r in self.datagram_receivers)
        yield DeferredList([maybeDeferred(p.stopListening) for listener, p in self.ports if listener.transport == "udp"])
        self.gate.open_all()
        yield DeferredList([f.close_all(drain) for f in self.stream_factories])
        if self.writer is not None:
            yield self.writer.close()
        if self.delivery is not None:
            yield self.delivery.stop()  # after ingest: everything read is committed by now
        if self.metrics_port is not None:
            yield maybeDeferred(self.metrics_port.stopListening)
        if self.control_port is not None:
            yield maybeDeferred(self.control_port.stopListening)
        self._pool.stop()
        if self.store is not None:
            meta = self.store.meta
            self.store.close()
            log.info(
                "stopped in %.1f s: everything read is committed (%d frames written this run, "
                "%d datagrams drained at stop; spool holds %d frames)",
                time.monotonic() - started, self.writer.committed_frames if self.writer else 0, drained, meta.frames,
            )
