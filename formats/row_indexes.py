"""Index arrays that Arrow code takes rows by (formats/, and the sinks that encode from columns): made by kernels, kept, and sliced.

Batch after batch the same positions are asked for (0, 1, 2, ...; the field
of each value of rows of ``width`` fields), only more or fewer of them, so
each is made once at a capacity (doubled when a batch needs more) and every
call slices it. Made by Arrow's kernels, never by a Python loop over the
positions: a loop cost a worker tenths of a second a table, and some were
made again for every batch.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["counting", "fields_of_rows", "list_offsets", "rows_of_fields"]

_COUNTING: list[pa.Int64Array] = []
_FIELDS: dict[int, pa.Int64Array] = {}
_ROWS: dict[int, pa.Int64Array] = {}
_BOUNDED = 64  # widths are a layout's field counts: few; this only bounds odd ones


def _capacity(n: int, made: pa.Array | None, per_row: int = 1) -> int:
    return max(n, 4096, 2 * len(made) // per_row if made is not None else 0)


def counting(n: int) -> pa.Int64Array:
    """0, 1, ..., n - 1."""
    made = _COUNTING[0] if _COUNTING else None
    if made is None or len(made) < n:
        made = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), _capacity(n, made))), 1)
        _COUNTING[:] = [made]
    return made.slice(0, n)


def fields_of_rows(width: int, rows: int) -> pa.Int64Array:
    """Each value's field in ``rows`` rows of ``width`` values laid one after the other: 0, 1, ...,
    width - 1, rows times."""
    return _per_value(_FIELDS, width, rows, lambda flat: pc.subtract(flat, pc.multiply(pc.divide(flat, width), width)))


def rows_of_fields(width: int, rows: int) -> pa.Int64Array:
    """Each value's row in ``rows`` rows of ``width`` values laid one after the other: 0 ``width``
    times, 1 ``width`` times, ..., rows - 1."""
    return _per_value(_ROWS, width, rows, lambda flat: pc.divide(flat, width))  # (integer division)


def _per_value(
    tables: dict[int, pa.Int64Array], width: int, rows: int, of_position: Callable[[pa.Int64Array], pa.Int64Array]
) -> pa.Int64Array:
    made = tables.get(width)
    if made is None or len(made) < width * rows:
        made = of_position(counting(width * _capacity(rows, made, width)))
        if len(tables) >= _BOUNDED:
            tables.clear()
        tables[width] = made
    return made.slice(0, width * rows)


def list_offsets(width: int, rows: int) -> pa.Int32Array:
    """The offsets of ``rows`` lists of ``width`` values each: 0, width, ..., width * rows."""
    return pc.cast(pc.multiply(counting(rows + 1), width), pa.int32())
