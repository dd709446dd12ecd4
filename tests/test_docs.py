"""Drift tests: the operator documentation stays true to the code.

- every metric family receiver/telemetry/names.py names is explained in
  docs/metrics.md and docs/troubleshooting.md, and every code of a
  ``reason`` label in docs/metrics.md's section for that family;
- every ``receiverctl`` command is in docs/operator-guide.md, and every
  ``receiverctl`` command line the documentation shows parses with the real
  argument parser (so no page documents an option that does not exist);
- every relative link in README.md and docs/ points at a file that exists,
  and at a heading of it when it names one.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.cli.ctl import _argument_parser
from receiver.telemetry.names import FAMILIES, Family

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
METRICS_PAGE = DOCS / "metrics.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
OPERATOR_GUIDE = DOCS / "operator-guide.md"


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


# -- (a) counters and metrics ------------------------------------------------


def documented(name: str, text: str) -> bool:
    """Whether ``name`` appears in ``text`` as code: `name` or `name{labels}`."""
    return re.search(r"`" + re.escape(name) + r"(\{[^`]*\})?`", text) is not None


def section_of(family: str, text: str) -> str:
    """The part of ``text`` under the ``###`` heading that names ``family`` as code, up to the next
    heading ('' if none does)."""
    for section in re.split(r"^(?=#+ )", text, flags=re.MULTILINE):
        heading = section.partition("\n")[0]
        if heading.startswith("### ") and documented(family, heading):
            return section
    return ""


def explained_codes(section: str) -> set[str]:
    """The codes a section's table explains: rows that start with | `code` |."""
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE))


class TestCountersAndMetrics:
    @pytest.mark.parametrize("page", [METRICS_PAGE, TROUBLESHOOTING], ids=lambda p: p.name)
    def test_every_family_is_explained(self, page: Path) -> None:
        """If receiver/telemetry/names.py names a family /metrics shows, then the page explains it."""
        text = page.read_text(encoding="utf-8")
        missing = sorted(name for name in FAMILIES if not documented(name, text))
        assert not missing, f"metrics missing from {page.relative_to(ROOT)}: {missing}"

    @pytest.mark.parametrize("family", [f for f in FAMILIES.values() if f.reasons], ids=lambda f: f.name)
    def test_every_reason_code_is_explained(self, family: Family) -> None:
        """If a family has a reason label, then docs/metrics.md has a section for it whose table explains
        every code of its vocabulary, and no code that is not in it."""
        assert family.reasons is not None
        section = section_of(family.name, METRICS_PAGE.read_text(encoding="utf-8"))
        assert section, f"docs/metrics.md has no ### section for {family.name}"
        assert explained_codes(section) == {code.value for code in family.reasons}

    def test_documented_requires_the_name_as_code(self) -> None:
        """If a name appears only as part of a longer name, then it does not count as documented."""
        assert documented("receiver_x_total", "the `receiver_x_total{listener}` counter")
        assert not documented("receiver_x_total", "`receiver_x_total_more`")
        assert not documented("receiver_x_total", "receiver_x_total in prose")

    def test_a_section_and_its_codes(self) -> None:
        """If a section's table leaves a code out, then the codes found show it."""
        text = "### `receiver_a_total{reason}`\n\n| reason | meaning |\n|---|---|\n| `one` | x |\n\n## B\n| `two` | y |\n"
        assert explained_codes(section_of("receiver_a_total", text)) == {"one"}
        assert section_of("receiver_c_total", text) == ""


# -- (b) receiverctl commands ---------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every runnable command: ``status``, ``spool dead-letters``, ``format from-rsyslog``..."""
    paths = []
    for name, sub in _subparsers(parser).items():
        nested = command_paths(sub, (*prefix, name))
        paths.extend(nested or [" ".join((*prefix, name))])
    return paths


def documented_command_lines(path: Path, *, inline: bool = True) -> Iterator[tuple[int, str]]:
    """The ``receiverctl ...`` command lines of a page's code: (line number, the line).

    Lines of code blocks (fenced or indented) and, with ``inline``, inline
    code that start with ``receiverctl`` (after an optional ``$`` prompt),
    with backslash continuations joined.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    fenced = False
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        candidates: list[str] = []
        if fenced or line.startswith("    "):
            candidates = [line.strip()]
        if inline:
            candidates += re.findall(r"`(receiverctl [^`]*)`", line)
        for candidate in candidates:
            candidate = candidate.removeprefix("$ ")
            if not candidate.startswith("receiverctl "):
                continue
            while candidate.endswith("\\") and i < len(lines) and candidate is candidates[0]:
                candidate = candidate[:-1] + " " + lines[i].strip()
                i += 1
            yield number, candidate


def _unquoted(line: str) -> str:
    """``line`` with its quoted parts emptied (filters hold ``[``, ``|`` and runs of spaces)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", line)


def command_part(line: str) -> str:
    """A documented line without what follows the command: a description after two spaces, a comment,
    a pipe or a redirection."""
    out, quote = [], ""
    for i, c in enumerate(line):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif line.startswith("  ", i) or c in "|<>" or (c == "#" and line[i - 1 : i].isspace()):
            break
        out.append(c)
    return "".join(out).strip()


def is_synopsis(line: str) -> bool:
    """Whether a command describes a grammar (``[--json]``, ``(A | B)``, ``PACK_ID...``) rather than a run."""
    bare = _unquoted(line)
    return any(mark in bare for mark in ("[", "(", "..."))


def command_words(line: str) -> list[str]:
    """The arguments of a documented ``receiverctl`` line, without the program name."""
    return shlex.split(command_part(line))[1:]


def unknown_words(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """The commands and options in ``words`` that receiverctl does not have.

    Lenient: a command named without its arguments (`receiverctl search` in
    prose) is fine; only a command word or an option that does not exist is
    reported.
    """
    words = list(words)
    while words and (choices := _subparsers(parser)):
        if words[0] not in choices:
            return [f"no command {words[0]!r} (there are {', '.join(choices)})"]
        parser = choices[words.pop(0)]
    options = parser._option_string_actions
    return [
        f"{parser.prog} has no option {word.split('=')[0]}"
        for word in words
        if word.startswith("-") and word != "-" and word.split("=")[0] not in options
    ]


OWN_PAGES = ("operator-guide.md", "troubleshooting.md", "compatibility.md")
"""Pages whose command lines are whole commands, checked as receiverctl would run them."""


class TestReceiverctl:
    def test_every_command_is_in_the_operator_guide(self) -> None:
        """If receiverctl has a command, then docs/operator-guide.md shows it in full (`receiverctl spool replay`)."""
        text = OPERATOR_GUIDE.read_text(encoding="utf-8")
        paths = command_paths(_argument_parser())
        assert "spool dead-letters" in paths and "status" in paths  # the walk found the nested ones
        missing = [path for path in paths if not re.search(rf"receiverctl {re.escape(path)}(?![\w-])", text)]
        assert not missing, f"receiverctl commands missing from {OPERATOR_GUIDE.relative_to(ROOT)}: {missing}"

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_documented_commands_and_options_exist(self, path: Path) -> None:
        """If a page shows a receiverctl command or option, then receiverctl has it."""
        parser = _argument_parser()
        bad = [
            f"{path.relative_to(ROOT)}:{number}: {line}: {problem}"
            for number, line in documented_command_lines(path)
            for problem in unknown_words(parser, command_words(line))
        ]
        assert not bad, "\n".join(bad)

    @pytest.mark.parametrize("name", OWN_PAGES)
    def test_command_lines_run_as_written(self, name: str, capsys: pytest.CaptureFixture[str]) -> None:
        """If an operator page shows a receiverctl command line, then receiverctl's parser accepts it whole.

        Code blocks only: inline code names commands in prose (`receiverctl search`).
        """
        parser = _argument_parser()
        path = DOCS / name
        bad = []
        for number, line in documented_command_lines(path, inline=False):
            if is_synopsis(command_part(line)):
                continue  # the grammar of a command (`receiverctl spool replay (PACK_ID ... | --all)`)
            try:
                parser.parse_args(command_words(line))
            except SystemExit as e:
                if e.code:
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {line}: {capsys.readouterr().err.strip()}")
        assert not bad, "\n".join(bad)

    def test_a_wrong_command_or_option_is_caught(self, tmp_path: Path) -> None:
        """If a page shows a command or an option receiverctl lacks, then the checks report it."""
        page = tmp_path / "page.md"
        page.write_text(
            "Run `receiverctl search` or:\n\n"
            "    receiverctl spool replay --every   # comment\n"
            "    $ receiverctl statuz --json\n"
            "    receiverctl search 'a  b' --since 2h | head\n"
        )
        found = [line for _, line in documented_command_lines(page)]
        assert found == [
            "receiverctl search",
            "receiverctl spool replay --every   # comment",
            "receiverctl statuz --json",
            "receiverctl search 'a  b' --since 2h | head",
        ]
        parser = _argument_parser()
        assert [unknown_words(parser, command_words(line)) for line in found] == [
            [],
            ["receiverctl spool replay has no option --every"],
            [f"no command 'statuz' (there are {', '.join(_subparsers(parser))})"],
            [],
        ]
        assert command_words(found[3]) == ["search", "a  b", "--since", "2h"]


# -- (c) links -------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def links(path: Path) -> Iterator[tuple[int, str]]:
    """The targets of the Markdown links of a page, outside code: (line number, target)."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            yield number, target


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation out, spaces to dashes."""
    anchors: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        base, n = slug, 1
        while slug in anchors:
            slug, n = f"{base}-{n}", n + 1
        anchors.add(slug)
    return anchors


def broken_links(path: Path) -> list[str]:
    """What is wrong with the relative links of one page, one line each."""
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, file:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            problems.append(f"{where}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    return problems


class TestLinks:
    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_relative_links_resolve(self, path: Path) -> None:
        """If a page links to a file (and a heading) of the repository, then they exist."""
        assert not broken_links(path), "\n".join(broken_links(path))

    def test_a_broken_link_is_caught(self, tmp_path: Path) -> None:
        """If a link names a missing file or heading, then it is reported; code and URLs are not links."""
        (tmp_path / "other.md").write_text("# Title\n\n## Logtail's `ilogtail_config.json`\n")
        page = tmp_path / "page.md"
        page.write_text(
            "[ok](other.md) [ok](other.md#logtails-ilogtail_configjson) [web](https://example.org/x)\n"
            "[gone](missing.md) [bad](other.md#nowhere)\n"
            "`[not a link](nowhere.md)`\n\n    [code](nowhere.md)\n"
        )
        global ROOT
        saved, ROOT = ROOT, tmp_path
        try:
            problems = broken_links(page)
        finally:
            ROOT = saved
        assert problems == [
            "page.md:2: missing.md: no such file",
            "page.md:2: other.md#nowhere: no heading #nowhere in other.md",
        ]
