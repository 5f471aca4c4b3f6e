"""A `Source` over table-shaped files (one `table.Column` per field)."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from pipelines.data.formats import base
from pipelines.data.formats import lines
from pipelines.data.formats import table

Labels = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def click_conversion(ints: dict[str, np.ndarray]):
  """Labels from `click` and `conversion` columns."""
  return ints["click"], ints["conversion"]


class TableSource(base.Source):
  """Rows of delimited files with a fixed layout.

  Args:
    paths: the files, read in order.
    columns: the layout, or None to derive it from each file's header with
      `from_header` (every file must give the same layout).
    header: whether each file starts with a header line.
    from_header: header cells, path -> columns (required without `columns`).
    labels: parsed int columns -> (click, conversion) [n] int64 arrays.
  """

  def __init__(self, paths: list[str], columns: tuple[table.Column, ...] | None,
               header: bool, from_header=None, labels: Labels = click_conversion):
    self.paths = list(paths)
    self.header = header
    self.labels = labels
    if columns is None:
      layouts = {p: from_header(lines.read_header(p).split(","), p)
                 for p in self.paths}
      columns = layouts[self.paths[0]]
      for path, layout in layouts.items():
        if layout != columns:
          raise ValueError(f"{path}: header differs from {self.paths[0]}'s; "
                           "all files of a dataset need the same columns")
    self.columns = tuple(columns)
    self.categorical = tuple(c.name for c in columns if c.kind == table.ID)
    self.numerical = tuple(c.name for c in columns if c.kind == table.VALUE)
    self.keys = tuple(c.name for c in columns if c.kind == table.KEY)

  def count_rows(self) -> int:
    """Data lines of all files (headers excluded)."""
    return sum(lines.count_lines(p) - self.header for p in self.paths)

  def parsed_batches(self, errors: base.BadRows, progress,
                     stop_index: int | None = None):
    """Yields (path, first line, first index, batch size, table.Parsed)."""
    index = 0
    for path in self.paths:
      for first_line, raw in lines.read_batches(path, progress,
                                                skip_lines=int(self.header)):
        if stop_index is not None and index >= stop_index:
          return
        parsed = table.parse(raw, self.columns, path, first_line, errors)
        if progress is not None:
          progress.update(rows=len(raw))
        yield path, first_line, index, len(raw), parsed
        index += len(raw)

  def blocks(self, errors: base.BadRows, progress,
             stop_index: int | None = None) -> Iterator[base.Block]:
    for path, first_line, index, _, parsed in self.parsed_batches(
        errors, progress, stop_index):
      click, conversion = self.labels(parsed.ints)
      yield base.Block(
          path=path, index=index + parsed.positions,
          lines=first_line + parsed.positions,
          ids={name: parsed.ints[name] for name in self.categorical},
          lists={},
          values={name: parsed.floats[name] for name in self.numerical},
          keys={name: parsed.ints[name] for name in self.keys},
          replaced=parsed.replaced,
          click=np.asarray(click, np.int64),
          conversion=np.asarray(conversion, np.int64),
          skipped=[(index + i, kind) for i, kind in parsed.skipped],
          blank=len(parsed.blank))


def header_error(path: str, header: list[str], expected: str) -> ValueError:
  shown = ",".join(header[:6]) + (",..." if len(header) > 6 else "")
  return ValueError(f"{path}:1: unexpected header {shown!r} "
                    f"({len(header)} columns); expected {expected}")
