"""Payloads from build workers in shared memory: the same bytes as through the pipe, and no file left."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.deliver import shared_payloads
from receiver.deliver.batches import Group
from receiver.deliver.building import Built, _SharedBuilt


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files' directory, a test's own."""
    monkeypatch.setattr(shared_payloads, "DIRECTORY", tmp_path)
    return tmp_path


def group(n: int, payload: bytes | None) -> Group:
    return Group("", "10.0.0.7", "10.0.0.7", [], [], f"P-{n}", payload=payload, record_count=3)


def built(*payloads: bytes | None) -> _SharedBuilt:
    return _SharedBuilt([group(n, p) for n, p in enumerate(payloads)], [(9, "damaged")], 2, reader=os.getpid())


def test_a_large_batch_crosses_in_a_file_the_reader_removes(directory: Path) -> None:
    """If a batch's payloads reach MIN_BYTES, then its pickle carries a file's name instead of them, and
    unpickling gives a plain Built with every payload back, in its group, and removes the file."""
    large = os.urandom(shared_payloads.MIN_BYTES)
    sent = built(b"first", None, large, b"")
    blob = pickle.dumps(sent)
    assert len(blob) < 2000
    (file,) = directory.iterdir()
    assert file.name.startswith(f"receiver-payloads-{os.getpid()}-") and file.stat().st_mode & 0o777 == 0o600
    received = pickle.loads(blob)
    assert type(received) is Built
    assert [g.payload for g in received.groups] == [b"first", None, large, b""]
    assert [g.pack_id for g in received.groups] == ["P-0", "P-1", "P-2", "P-3"]
    assert (received.damaged, received.unknown_tags) == ([(9, "damaged")], 2)
    assert list(directory.iterdir()) == []
    assert [g.payload for g in sent.groups] == [b"first", None, large, b""]  # the worker's own, untouched


def test_a_small_batch_goes_through_the_pipe(directory: Path) -> None:
    """If a batch's payloads are under MIN_BYTES, then they are in its pickle, and no file is made."""
    blob = pickle.dumps(built(b"a" * 1000, b"b"))
    assert list(directory.iterdir()) == []
    received = pickle.loads(blob)
    assert type(received) is Built and [g.payload for g in received.groups] == [b"a" * 1000, b"b"]


def test_without_the_directory_the_payloads_go_through_the_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the file cannot be made (no /dev/shm, not writable), then the payloads are in the pickle."""
    monkeypatch.setattr(shared_payloads, "DIRECTORY", tmp_path / "missing")
    large = os.urandom(shared_payloads.MIN_BYTES)
    blob = pickle.dumps(built(large))
    assert len(blob) > shared_payloads.MIN_BYTES
    assert [g.payload for g in pickle.loads(blob).groups] == [large]


def test_a_file_cut_short_is_an_error_and_is_removed(directory: Path) -> None:
    """If the file holds less than its payloads' sizes say, then reading it raises (the pool breaks, as
    when a worker dies) and the file is gone."""
    name = shared_payloads.write_payloads([b"abc"], os.getpid())
    assert name is not None
    with pytest.raises(OSError, match="3 bytes of a payload of 4"):
        shared_payloads.read_payloads(name, [4])
    assert list(directory.iterdir()) == []


def test_only_a_payload_file_is_read(directory: Path) -> None:
    """If the name is not one write_payloads makes, then nothing is opened or removed."""
    (directory / "other").write_bytes(b"abc")
    for name in ("other", "receiver-payloads-1/../../other", "../other"):
        with pytest.raises(OSError, match="not a payload file"):
            shared_payloads.read_payloads(name, [3])
    assert (directory / "other").read_bytes() == b"abc"


def test_files_of_delivery_processes_that_ended_are_removed(directory: Path) -> None:
    """If a delivery process ended between a worker's write and its own read, then the next one to start
    removes that file; a running process's files and other files stay."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    dead = int(ended.stdout)
    stale = shared_payloads.write_payloads([b"x"], dead)
    live = shared_payloads.write_payloads([b"y"], os.getpid())
    (directory / "someone-else").write_bytes(b"z")
    assert stale is not None and live is not None
    assert shared_payloads.remove_stale() == 1
    assert sorted(p.name for p in directory.iterdir()) == sorted([live, "someone-else"])


def test_the_carrier_is_a_built_with_one_field_more() -> None:
    """_SharedBuilt adds only its reader to Built's fields (a field added to Built crosses too)."""
    names = [f.name for f in dataclasses.fields(_SharedBuilt)]
    assert names == [f.name for f in dataclasses.fields(Built)] + ["reader"]
