"""Text from senders made safe to show: formats/text.py."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from formats.text import escape_unprintable, escape_unprintable_json


class TestEscapeUnprintable:
    def test_printable_text_is_kept(self) -> None:
        """If the text is printable in any script, then it comes back unchanged."""
        for text in ("hello world", "café Straße", "日本語のログ", "emoji 🙂", ""):
            assert escape_unprintable(text) == text

    def test_what_a_terminal_obeys_is_escaped(self) -> None:
        """If the text holds C0 or C1 controls, direction overrides or line separators, then each is an escape."""
        assert escape_unprintable("a\nb\rc\td") == "a\\nb\\rc\\td"
        assert escape_unprintable("\x1b[31mred\x9b2J") == "\\x1b[31mred\\x9b2J"
        assert escape_unprintable("x\u202ey\u2066z\u2028") == "x\\u202ey\\u2066z\\u2028"
        assert escape_unprintable("tag\U000e0041") == "tag\\U000e0041"

    @given(st.text())
    def test_always_one_printable_line(self, text: str) -> None:
        """If any text is escaped, then the result is printable: one line, nothing a terminal acts on."""
        assert escape_unprintable(text).isprintable()


class TestEscapeUnprintableJson:
    @given(st.text())
    def test_same_json_and_printable(self, text: str) -> None:
        """If a JSON text of any string is escaped, then it is printable and decodes to the same string."""
        document = json.dumps({"msg": text}, ensure_ascii=False)
        escaped = escape_unprintable_json(document)
        assert escaped.isprintable()
        assert json.loads(escaped) == {"msg": text}
