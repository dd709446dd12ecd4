"""The index tables formats/ takes rows by: what they are for any size, grown or not."""

from __future__ import annotations

from formats.row_indexes import counting, fields_of_rows, list_offsets, rows_of_fields


def test_the_tables_are_what_they_say_as_they_grow_and_shrink() -> None:
    """If batches ask for more and fewer positions in turn (the tables grow by doubling and are
    sliced), then each answer is exactly the positions asked for."""
    for n in (0, 1, 5, 4096, 4097, 20_000, 3, 70_001):
        assert counting(n).to_pylist() == list(range(n))
        for width in (1, 7):
            assert fields_of_rows(width, n).to_pylist() == list(range(width)) * n
            assert rows_of_fields(width, n).to_pylist() == [row for row in range(n) for _ in range(width)]
            assert list_offsets(width, n).to_pylist() == list(range(0, width * n + 1, width))
