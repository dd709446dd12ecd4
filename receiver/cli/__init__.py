"""Command-line entry points: ``receiver`` (the daemon) and ``receiverctl`` (admin)."""

from __future__ import annotations

import argparse

from receiver.config.model import Config, default_config

__all__ = ["config_of"]


def config_of(args: argparse.Namespace) -> Config:
    """The configuration ``-c`` names (the built-in defaults without it); ``args.usage_error`` if it has errors."""
    if args.config is None:
        return default_config()
    from receiver.config.file import ConfigError, load_config

    try:
        return load_config(args.config).config
    except ConfigError as e:
        raise args.usage_error(str(e)) from e
