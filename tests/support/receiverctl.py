"""``receiverctl`` run as the operator runs it: a subprocess of this Python, its output captured."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import overload

from tests.support.programs import REPO

__all__ = ["BARE_ENV", "RECEIVERCTL_COMMAND", "receiverctl", "sinks_caught_up"]

RECEIVERCTL_COMMAND = [sys.executable, "-m", "receiver.cli.ctl"]
"""The command line of ``receiverctl`` without its arguments (for a ``Popen`` of ``tail -f``)."""

BARE_ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
"""An environment with nothing of the test run's in it: what receiverctl finds must come from its arguments."""


@overload
def receiverctl(
    *args: str, stdin: bytes, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[bytes]: ...


@overload
def receiverctl(
    *args: str, stdin: str | None = None, cwd: Path | None = None, env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]: ...


def receiverctl(
    *args: str, stdin: str | bytes | None = None, cwd: Path | None = None, env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """``receiverctl ARGS``, finished within ``timeout`` s, its exit status and output returned (never raised).

    Output is text, or bytes when ``stdin`` is bytes. ``env`` replaces the
    environment (``None``: this process's); ``cwd`` is where it runs.
    """
    return subprocess.run(
        [*RECEIVERCTL_COMMAND, *args], input=stdin, capture_output=True, text=not isinstance(stdin, bytes),
        cwd=cwd, env=None if env is None else dict(env), timeout=timeout, check=False,
    )


def sinks_caught_up(config_path: Path) -> bool:
    """Whether every sink's cursor is at the spool's end (``receiverctl status``: lag 0 segments).

    A sink moves its cursor past a batch only once every group of it is
    settled, so then everything committed so far has been sent for good:
    nothing more goes upstream until more arrives (the sentinel of delivery).
    """
    result = receiverctl("status", "--json", "-c", str(config_path))
    return result.returncode == 0 and all(sink["lag_segments"] == 0 for sink in json.loads(result.stdout)["sinks"])
