"""What every ``receiverctl`` command shares: the error that ends it with status 2, and the configuration ``-c`` names.

``UsageError`` lives here, not in ctl.py, so that each command module imports
the one class ``main()`` catches: run as ``python -m receiver.cli.ctl``, the
module ctl.py is ``__main__``, and a class defined there would be another
class than the one a command module imported from ``receiver.cli.ctl``.
"""

from __future__ import annotations

import argparse

from receiver.config.model import Config, default_config

__all__ = ["UsageError", "config_of"]


class UsageError(Exception):
    """A command line that cannot be carried out; the message says why (``receiverctl: ...``, status 2)."""


def config_of(args: argparse.Namespace) -> Config:
    """The configuration ``-c`` names (the built-in defaults without it); ``UsageError`` if it has errors.

    Its warnings are not printed: ``receiver run`` and ``receiver check-config`` give them.
    """
    if args.config is None:
        return default_config()
    # The loader only for the commands given a file: `receiverctl parse` starts without it.
    from receiver.config.file import ConfigError, load_config

    try:
        return load_config(args.config).config
    except ConfigError as e:
        raise UsageError(str(e)) from e
