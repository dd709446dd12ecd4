"""The parts of configuration reading that stand alone: rules built from the model, the key-line locator, the report."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Literal

import pytest

from receiver.config.locate import Locator
from receiver.config.model import (
    ClientCertificates,
    HttpSinkConfig,
    SlsSinkConfig,
    SyncMode,
    TlsConfig,
)
from receiver.config.report import Report, key_path_text
from receiver.config.rules import (
    LISTENER_RULES,
    SECTION_RULES,
    SINK_CLASSES,
    SINK_RULES,
    TLS_RULES,
    Bounds,
    Rule,
    field_default,
    required_keys,
    rules_of,
)

Colour = Literal["red", "green"]


@dataclasses.dataclass(frozen=True)
class Sample:
    count: int
    ratio: float = 0.5
    on: bool = True
    where: Path | None = None
    colour: Colour = "red"
    label: str = ""
    name: str = "sample"


_LABEL = Rule("text", "a label")


class TestRulesOf:
    def test_the_field_types_give_kinds_and_choices(self) -> None:
        """If a field is a bool, a Path (or None) or a Literal, then its rule comes from the type alone."""
        rules = rules_of(Sample, {"count": Bounds(1), "ratio": Bounds(0, 1), "label": _LABEL, "name": _LABEL})
        assert rules["on"].kind == "bool"
        assert rules["where"].kind == "path"
        assert (rules["colour"].kind, rules["colour"].choices, rules["colour"].allowed) == (
            "choice", ("red", "green"), "one of red, green",
        )

    def test_bounds_take_integer_or_number_from_the_field(self) -> None:
        """If an int and a float field are given bounds, then the int takes integers and the float any number."""
        rules = rules_of(Sample, {"count": Bounds(1, note="1: one"), "ratio": Bounds(0, 1), "label": _LABEL, "name": _LABEL})
        assert (rules["count"].kind, rules["count"].allowed) == ("int", "an integer of at least 1 (1: one)")
        assert (rules["ratio"].kind, rules["ratio"].allowed) == ("number", "a number from 0 to 1")

    def test_the_name_and_type_come_first(self) -> None:
        """If a model has a name, then it is the first key (messages list a table's keys in this order)."""
        rules = rules_of(Sample, {"count": Bounds(1), "ratio": Bounds(0, 1), "label": _LABEL, "name": _LABEL})
        assert list(rules) == ["name", "count", "ratio", "on", "where", "colour", "label"]
        assert list(SINK_RULES["sls"])[:3] == ["name", "type", "endpoint"]

    @pytest.mark.parametrize("missing", ["count", "label"])
    def test_a_field_without_the_rule_it_needs_is_named(self, missing: str) -> None:
        """If a number has no bounds or a string no rule, then building the rules fails naming the field."""
        given: dict[str, Rule | Bounds] = {"count": Bounds(1), "ratio": Bounds(0, 1), "label": _LABEL, "name": _LABEL}
        del given[missing]
        with pytest.raises(TypeError, match=f"Sample.{missing} "):
            rules_of(Sample, given)

    def test_a_rule_for_no_field_is_named(self) -> None:
        """If a rule names a key the model does not have, then building the rules fails naming it."""
        given: dict[str, Rule | Bounds] = {
            "count": Bounds(1), "ratio": Bounds(0, 1), "label": _LABEL, "name": _LABEL, "colour_": _LABEL,
        }
        with pytest.raises(TypeError, match="colour_: not fields of Sample"):
            rules_of(Sample, given)

    def test_fields_read_apart_have_no_rule(self) -> None:
        """If a field is read apart (a listener's tls table), then it has no rule of its own."""
        assert "tls" not in LISTENER_RULES
        assert "streamlog_formats" not in SECTION_RULES["parse"]


class TestRulesFollowTheModel:
    def test_choices_are_the_literal_types(self) -> None:
        """If the model's Literal gains a choice, then the file accepts it: the rule reads the type."""
        assert SECTION_RULES["spool"]["sync"].choices == typing.get_args(SyncMode)
        assert TLS_RULES["client_certificates"].choices == typing.get_args(ClientCertificates)

    def test_sink_types_are_the_sink_classes(self) -> None:
        """If the model has a sink class, then its type field names it, and its fields are its keys."""
        assert SINK_CLASSES["sls"] is SlsSinkConfig
        assert set(SINK_RULES["http"]) == {f.name for f in dataclasses.fields(HttpSinkConfig)}

    def test_required_keys_are_the_fields_without_a_default(self) -> None:
        """If a field has no default, then a file must give it."""
        assert required_keys(TlsConfig) == ("certificate_file", "key_file")
        assert required_keys(SlsSinkConfig) == ("name", "endpoint", "project", "logstore")

    def test_a_default_is_read_from_the_field(self) -> None:
        """If the reader needs a default, then it reads the model's."""
        assert field_default(HttpSinkConfig, "signature") == "hmac-sha256"
        assert field_default(Sample, "ratio") == 0.5


TOML = """\
top = 1

[table]
key = "value"
dotted.inner = 2
"quoted key" = 3
list = [
  "a",
  { inline = 4 },
]
text = '''
several
lines'''
after = 5

[[array]]
x = 1

[[array]]
x = 2
"""


class TestLocator:
    @pytest.mark.parametrize(
        ("key_path", "line"),
        [
            (("top",), 1),
            (("table",), 3),
            (("table", "key"), 4),
            (("table", "dotted", "inner"), 5),
            (("table", "quoted key"), 6),
            (("table", "list", 0), 8),
            (("table", "list", 1, "inline"), 9),
            (("table", "after"), 14),
            (("array", 0, "x"), 17),
            (("array", 1, "x"), 20),
        ],
    )
    def test_every_key_path_has_its_line(self, key_path: tuple[str | int, ...], line: int) -> None:
        """If the text has a key path (in a table, array, inline table, after a multi-line string), then its line is found."""
        assert Locator(TOML).line_of(key_path) == line

    def test_an_unknown_path_falls_back_to_the_nearest_enclosing_one(self) -> None:
        """If a key path is not in the text (a missing key), then the line is its table's, else 1."""
        locator = Locator(TOML)
        assert locator.line_of(("array", 1, "missing")) == 19
        assert locator.line_of(("nowhere",)) == 1

    def test_json(self) -> None:
        """If the text is JSON, then keys and array elements are found the same way."""
        locator = Locator('{\n "a": 1,\n "b": [\n  {"c": 2}\n ]\n}', json_text=True)
        assert (locator.line_of(("a",)), locator.line_of(("b", 0, "c"))) == (2, 4)

    def test_text_it_does_not_follow_ends_the_walk(self) -> None:
        """If the locator meets text it does not follow, then the lines found before it stand."""
        locator = Locator('a = 1\nb = "unterminated\nc = 3\n')
        assert (locator.line_of(("a",)), locator.line_of(("c",))) == (1, 1)


class TestReport:
    def test_lines_name_file_line_and_key_path_in_file_order(self) -> None:
        """If problems are reported out of order, then the errors come sorted by line, each prefixed."""
        report = Report("f.toml", Locator(TOML))
        report.error(("array", 1, "x"), "second")
        report.error(("table", "key"), "first")
        report.warning((), "whole file")
        assert report.failed
        assert report.errors() == ["f.toml:4: table.key: first", "f.toml:20: array[1].x: second"]
        assert report.warnings() == ("f.toml:1: whole file",)

    def test_key_paths_are_written_as_in_toml(self) -> None:
        """If a key is not a bare word, then it is quoted; indices are in brackets."""
        assert key_path_text(("listeners", 1, "framing")) == "listeners[1].framing"
        assert key_path_text(("table", "quoted key")) == 'table."quoted key"'
