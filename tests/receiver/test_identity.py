"""The appliance's identities, machine groups, and group tags."""

from __future__ import annotations

from pathlib import Path

from receiver.config.identity import (
    ENV_USER_DEFINED_ID,
    Identities,
    MachineGroup,
    MachineGroups,
    group_tags,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestIdentities:
    def test_file_lines_trimmed_empties_skipped(self, tmp_path: Path) -> None:
        """If the file has padded and empty lines, then identities are the trimmed non-empty ones, in order."""
        path = tmp_path / "user_defined_id"
        path.write_text("  web-fleet \n\n\tprod-hz\n   \n")
        assert Identities(path, environ={}, clock=Clock()).current() == ("web-fleet", "prod-hz")

    def test_environment_adds(self, tmp_path: Path) -> None:
        """If ALIYUN_LOGTAIL_USER_DEFINED_ID is set, then its comma-separated ids follow the file's, without repeats."""
        path = tmp_path / "user_defined_id"
        path.write_text("a\n")
        ids = Identities(path, environ={ENV_USER_DEFINED_ID: " b, a ,,c"}, clock=Clock())
        assert ids.current() == ("a", "b", "c")

    def test_reread_at_most_every_minute(self, tmp_path: Path) -> None:
        """If the file changes, then the change applies within a minute, not at every call."""
        path = tmp_path / "user_defined_id"
        path.write_text("old\n")
        clock = Clock()
        ids = Identities(path, environ={}, clock=clock)
        assert ids.current() == ("old",)
        path.write_text("new\n")
        clock.now += 59
        assert ids.current() == ("old",)
        clock.now += 1
        assert ids.current() == ("new",)

    def test_removed_file_means_no_identity(self, tmp_path: Path) -> None:
        """If the file is removed, then the appliance has no user-defined identity again."""
        path = tmp_path / "user_defined_id"
        path.write_text("x\n")
        clock = Clock()
        ids = Identities(path, environ={}, clock=clock)
        assert ids.current() == ("x",)
        path.unlink()
        clock.now += 60
        assert ids.current() == ()
        assert ids.problem is None

    def test_unreadable_file_is_reported(self, tmp_path: Path) -> None:
        """If the path is not a readable file, then no identity and the problem is said."""
        ids = Identities(tmp_path, environ={}, clock=Clock())
        assert ids.current() == ()
        assert ids.problem is not None and str(tmp_path) in ids.problem


class TestMachineGroups:
    groups = MachineGroups([
        MachineGroup("web", networks=("10.1.0.0/16",), hostnames=("web-*",)),
        MachineGroup("db", networks=("10.2.0.0/16", "2001:db8::/32"), hostnames=("DB?.example.com",)),
        MachineGroup("all-v4", networks=("0.0.0.0/0",)),
    ])

    def test_by_network(self) -> None:
        """If a sender's address is in a group's network, then it belongs to it (IPv4-mapped counts as IPv4)."""
        assert self.groups.of("10.1.2.3", "") == ("web", "all-v4")
        assert self.groups.of("::ffff:10.2.0.9", "") == ("db", "all-v4")
        assert self.groups.of("2001:db8::5", "") == ("db",)

    def test_by_hostname_pattern(self) -> None:
        """If a record's hostname matches a group's pattern, case-insensitively, then the sender belongs to it."""
        assert self.groups.of("192.0.2.1", "WEB-7") == ("web", "all-v4")
        assert self.groups.of("not-an-ip", "db1.example.com") == ("db",)
        assert self.groups.of("not-an-ip", "db12.example.com") == ()


class TestGroupTags:
    def test_logtail_keys_in_order(self) -> None:
        """If a group is tagged, then Logtail's keys come in order and empty ones are left out."""
        assert group_tags(
            client_ip="10.0.0.7", receive_time_s=1795323666, hostname="appliance-1",
            identities=("web-fleet", "prod"), machine_groups=(), pack_id="5F2E-1",
        ) == [
            ("__client_ip__", "10.0.0.7"),
            ("__receive_time__", "1795323666"),
            ("__hostname__", "appliance-1"),
            ("__user_defined_id__", "web-fleet prod"),
            ("__pack_id__", "5F2E-1"),
        ]
