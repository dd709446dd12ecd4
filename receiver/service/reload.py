"""What a reload changes, worked out from the old and the new configuration alone.

:func:`plan_reload` is pure (no reactor, no sockets), so every rule of a
reload is tested on its own; :meth:`ReceiverService.reload
<receiver.service.lifecycle.ReceiverService.reload>` carries the plan out:
it binds, unbinds, reconfigures logging and restarts delivery, in that order.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from receiver.config.model import Config, ListenerConfig

__all__ = ["DELIVERY_SECTIONS", "RESTART_ONLY", "ReloadError", "ReloadPlan", "delivery_step", "plan_reload"]


class ReloadError(Exception):
    """A configuration the receiver refuses to switch to; the running one stays. The message says why."""


RESTART_ONLY = ("state_directory", "spool", "control", "metrics", "shutdown")
"""Sections a running daemon cannot change: a reload reports them and keeps the running ones."""

DELIVERY_SECTIONS = ("sinks", "routes", "machine_groups", "identity", "deliver", "parse", "listeners")
"""Sections the delivery process reads: a change to any of them restarts it (from its cursors)."""

DeliveryStep = Literal["start", "stop", "restart", "keep"]


@dataclasses.dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The steps of one reload, in the order they are taken."""

    bind: tuple[ListenerConfig, ...]
    """Listeners under a new name: bound first, so a port that cannot be bound refuses the reload
    before anything has changed."""
    unbind: tuple[ListenerConfig, ...]
    """Listeners removed or changed: they stop accepting and their connections are read to the end."""
    rebind: tuple[ListenerConfig, ...]
    """Listeners changed under the same name: bound again with the new settings (the old ones come
    back if that fails)."""
    logging_changed: bool
    kept: tuple[str, ...]
    """Restart-only sections that changed: reported, not applied."""
    config: Config
    """The configuration to run: the new one, with the running restart-only sections."""


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """The steps that take a daemon running ``old`` to ``new``."""
    old_by_name = {x.name: x for x in old.listeners}
    new_by_name = {x.name: x for x in new.listeners}
    unbind = tuple(x for name, x in old_by_name.items() if new_by_name.get(name) != x)
    added = [x for name, x in new_by_name.items() if old_by_name.get(name) != x]
    kept = tuple(name for name in RESTART_ONLY if getattr(new, name) != getattr(old, name))
    return ReloadPlan(
        bind=tuple(x for x in added if x.name not in old_by_name),
        unbind=unbind,
        rebind=tuple(x for x in added if x.name in old_by_name),
        logging_changed=new.logging != old.logging,
        kept=kept,
        config=dataclasses.replace(new, **{name: getattr(old, name) for name in kept}),
    )


def delivery_step(old: Config, new: Config, *, running: bool) -> DeliveryStep:
    """What becomes of the delivery process when ``new`` (as applied) replaces ``old``."""
    if new.deliver.enabled and not running:
        return "start"
    if not new.deliver.enabled and running:
        return "stop"
    if running and any(getattr(new, name) != getattr(old, name) for name in DELIVERY_SECTIONS):
        return "restart"
    return "keep"
