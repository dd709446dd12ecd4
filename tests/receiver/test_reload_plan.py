"""The reload plan: what a reload changes, decided from two configurations without a reactor."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from receiver.config.model import Config, DeliverConfig, ListenerConfig, LoggingConfig, SpoolConfig
from receiver.service.reload import delivery_step, plan_reload

TCP = ListenerConfig("tcp", "tcp", port=11111)
UDP = ListenerConfig("udp", "udp", port=11111)


def config(*listeners: ListenerConfig, **changes: object) -> Config:
    return dataclasses.replace(Config(state_directory=Path("/var/lib/r"), listeners=listeners), **changes)


class TestListeners:
    def test_nothing_changed_plans_nothing(self) -> None:
        """If the new configuration is the old one, then no listener is touched."""
        plan = plan_reload(config(TCP, UDP), config(TCP, UDP))
        assert (plan.bind, plan.unbind, plan.rebind, plan.kept, plan.logging_changed) == ((), (), (), (), False)

    def test_a_new_name_is_bound_first_and_a_gone_name_unbound(self) -> None:
        """If a listener is added under a new name and another removed, then the new one is bound
        (before anything else changes) and the old one unbound; neither is rebound."""
        relp = ListenerConfig("relp", "relp", port=2514)
        plan = plan_reload(config(TCP, UDP), config(TCP, relp))
        assert plan.bind == (relp,)
        assert plan.unbind == (UDP,)
        assert plan.rebind == ()

    def test_a_changed_listener_is_unbound_then_rebound(self) -> None:
        """If a listener keeps its name but changes a setting, then it is unbound and bound again."""
        moved = dataclasses.replace(TCP, port=12222)
        plan = plan_reload(config(TCP, UDP), config(moved, UDP))
        assert (plan.bind, plan.unbind, plan.rebind) == ((), (TCP,), (moved,))


class TestSections:
    def test_restart_only_sections_are_kept_and_reported(self) -> None:
        """If the spool section changes, then the plan keeps the running one and names it."""
        old = config(TCP)
        new = config(TCP, spool=SpoolConfig(segment_max_bytes=1024), logging=LoggingConfig(level="debug"))
        plan = plan_reload(old, new)
        assert plan.kept == ("spool",)
        assert plan.config.spool == old.spool
        assert plan.config.logging == new.logging
        assert plan.logging_changed

    def test_the_state_directory_is_kept(self) -> None:
        plan = plan_reload(config(TCP), config(TCP, state_directory=Path("/elsewhere")))
        assert plan.kept == ("state_directory",)
        assert plan.config.state_directory == Path("/var/lib/r")


class TestDelivery:
    def test_enabled_without_a_process_starts_it(self) -> None:
        assert delivery_step(config(TCP), config(TCP), running=False) == "start"

    def test_disabled_with_a_process_stops_it(self) -> None:
        off = config(TCP, deliver=DeliverConfig(enabled=False))
        assert delivery_step(config(TCP), off, running=True) == "stop"
        assert delivery_step(off, off, running=False) == "keep"

    def test_a_section_delivery_reads_restarts_it(self) -> None:
        """If sinks, routes, parsing or the listeners change, then delivery restarts; logging alone does not."""
        assert delivery_step(config(TCP), config(TCP, UDP), running=True) == "restart"
        assert delivery_step(config(TCP), config(TCP, logging=LoggingConfig(level="debug")), running=True) == "keep"
