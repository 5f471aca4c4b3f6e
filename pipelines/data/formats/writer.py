"""Pass 2 of the converter: rows routed to splits, checked, counted, written.

`RowWriter` routes each parsed block to its output split (a
`splitting.Splitter`), drops and counts what is not written (conversions
without a click in funnel data, repeated single-valued fields), counts OOV
ids and hands the columns to the split's `SplitWriter`. The labels are
written under the schema's names (`schema.labels`).

Rows arrive a block at a time; a shard is written (in the record layout
asked for, `layout.write_file`: row blocks by default, or one Example per
row) when the buffer holds `shard_rows` rows or `buffer_values` values, so memory
is bounded whatever the split size. Shards get temporary names until the
split is closed, when their count is known and they are renamed to the
`records.shard_name` pattern that `make_dataset` lists.
"""

from __future__ import annotations

import collections
import os

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from pipelines.data import layout as layout_lib
from pipelines.data import records
from pipelines.data.formats import base
from pipelines.data.formats import report as report_lib
from pipelines.data.formats import splitting
from pipelines.data.formats import vocabulary


class SplitWriter:
  """Writes the rows of one split.

  Args:
    directory: output folder (exists).
    split: split name.
    shard_rows: rows per shard at most.
    buffer_values: values (ids in lists included) buffered at most.
    layout: the record layout of the shards.
  """

  def __init__(self, directory: str, split: str, shard_rows: int,
               buffer_values: int, layout: layout_lib.Layout):
    self.directory, self.split, self.layout = directory, split, layout
    self.shard_rows, self.buffer_values = shard_rows, buffer_values
    self._buffer: list[dict] = []
    self._rows = self._values = 0
    self.paths: list[str] = []
    self.rows = 0

  def add(self, columns: dict) -> None:
    """Appends a block of columns (arrays or RaggedColumns of equal rows)."""
    n = len(next(iter(columns.values())))
    if not n:
      return
    self._buffer.append(columns)
    self._rows += n
    self._values += sum(len(c.values) if isinstance(c, records.RaggedColumn)
                        else n for c in columns.values())
    if self._rows >= self.shard_rows or self._values >= self.buffer_values:
      self.flush()

  def flush(self) -> None:
    if not self._buffer:
      return
    merged = {}
    for name in self._buffer[0]:
      parts = [b[name] for b in self._buffer]
      merged[name] = (base.concat(parts) if isinstance(
          parts[0], records.RaggedColumn) else np.concatenate(parts))
    path = os.path.join(self.directory,
                        f"{self.split}-{len(self.paths):05d}.partial")
    self.rows += layout_lib.write_file(merged, path, self.layout)
    self.paths.append(path)
    self._buffer, self._rows, self._values = [], 0, 0

  def close(self, empty_columns: dict) -> list[str]:
    """Flushes and renames the shards; an empty split gets one empty shard.

    Args:
      empty_columns: zero-row columns (the schema's), for an empty split.

    Returns:
      The final shard paths.
    """
    self.flush()
    if not self.paths:
      path = os.path.join(self.directory, f"{self.split}-00000.partial")
      layout_lib.write_file(empty_columns, path, self.layout)
      self.paths.append(path)
    final = []
    for i, path in enumerate(self.paths):
      target = os.path.join(self.directory,
                            records.shard_name(self.split, i, len(self.paths)))
      tf.io.gfile.rename(path, target, overwrite=True)
      final.append(target)
    self.paths = final
    return final


def without_click(block: base.Block) -> np.ndarray:
  """[n] bool: rows whose second label is 1 and first 0 (a conversion
  without a click, in funnel data)."""
  return (block.conversion == 1) & (block.click == 0)


def drop_mask(block: base.Block, keep_conversions_without_click: bool,
              label_relation: str = F.FUNNEL) -> np.ndarray:
  """[n] bool: the rows dropped: conversions without a click, unless kept;
  none when the labels are independent (the second without the first is
  normal there)."""
  drop = label_relation == F.FUNNEL and not keep_conversions_without_click
  return without_click(block) & drop


class RowWriter:
  """Pass 2 of the converter: routes blocks to splits, checks, counts and
  writes them (a `SplitWriter` per split).

  Args:
    schema: the schema fitted on the train rows.
    directory: output folder (exists).
    errors: the bad-row policy.
    splits: the output splits.
    shard_rows, buffer_values: see `SplitWriter`.
    keep_conversions_without_click: write such rows instead of dropping them
      (funnel schemas; an independent schema drops and counts none).
    layout: the record layout of the shards.
  """

  def __init__(self, schema: F.FeatureSchema, directory: str,
               errors: base.BadRows, splits: tuple[str, ...], shard_rows: int,
               buffer_values: int, keep_conversions_without_click: bool,
               layout: layout_lib.Layout):
    self.schema, self.errors = schema, errors
    self.keep_cwc = keep_conversions_without_click
    self.funnel = schema.label_relation == F.FUNNEL
    self.counts = {s: report_lib.SplitCounts(schema.labels,
                                             schema.label_relation)
                   for s in splits}
    self.writers = {s: SplitWriter(directory, s, shard_rows, buffer_values,
                                   layout) for s in splits}
    self.oov = {s: {f.name: vocabulary.OovCounter(f) for f in schema.categorical}
                for s in splits}
    self.lengths = {s: collections.defaultdict(lambda: [0, 0]) for s in splits}
    self.unknown = collections.Counter()
    self.blank = collections.Counter()
    self._names = set(schema.feature_names)

  def add_block(self, source: str, block: base.Block,
                splitter: splitting.Splitter) -> None:
    """Routes, counts and writes a block of the source split `source`."""
    self.blank[source] += block.blank
    good = splitter.route(source, block.index)
    skipped_index = np.asarray([i for i, _ in block.skipped], np.int64)
    skipped = splitter.route(source, skipped_index)
    unjoined = splitter.route(source, block.unjoined)
    for split, mask in good.items():
      counts = self.counts[split]
      for (_, kind), routed in zip(block.skipped, skipped[split]):
        if routed:
          counts.skipped[kind] += 1
      counts.unjoined += int(unjoined[split].sum())
      self._add_rows(split, block.select(mask), counts)

  def _add_rows(self, split: str, block: base.Block,
                counts: report_lib.SplitCounts) -> None:
    if self.funnel:
      counts.conversions_without_click += int(without_click(block).sum())
    drop = drop_mask(block, self.keep_cwc, self.schema.label_relation)
    counts.dropped_conversion_without_click += int(drop.sum())
    block = self._check_single(block.select(~drop), counts)
    counts.add_labels(block.click, block.conversion)
    for name, replaced in block.replaced.items():
      counts.non_finite_replaced[name] += int(np.sum(replaced))
    self.writers[split].add(self._columns(split, block))

  def _check_single(self, block: base.Block, counts) -> base.Block:
    """Rows listing several ids for a single-valued field are bad rows."""
    bad = np.zeros(len(block), bool)
    for f in self.schema.categorical:
      if not f.multivalent and f.name in block.lists:
        many = block.lists[f.name].lengths > 1
        for line in block.lines[many & ~bad]:
          self.errors.report(block.path, int(line), base.REPEATED_FIELD,
                             f"field {f.name} has several ids but is "
                             "single-valued in the train split")
        bad |= many
    if bad.any():
      counts.skipped[base.REPEATED_FIELD] += int(bad.sum())
      return block.select(~bad)
    return block

  def _columns(self, split: str, block: base.Block) -> dict:
    n, columns = len(block), {}
    for name, column in {**block.ids, **block.lists}.items():
      if name not in self._names:
        self.unknown[name] += len(column.values) if isinstance(
            column, records.RaggedColumn) else n
    for f in self.schema.categorical:
      if f.multivalent:
        column = block.lists.get(f.name)
        if column is None:
          ids = block.ids.get(f.name)
          column = (records.RaggedColumn.from_lengths(ids, np.ones(n, np.int64))
                    if ids is not None else records.RaggedColumn(
                        np.zeros(0, np.int64), np.zeros(n + 1, np.int64)))
        self.oov[split][f.name].update(column.values)
        self.lengths[split][f.name][0] += len(column.values)
        self.lengths[split][f.name][1] += n
      else:
        column = block.ids.get(f.name)
        if column is None:
          column = np.full(n, f.default, np.int64)
          if f.name in block.lists:  # lists of at most one id here
            listed = block.lists[f.name]
            column[listed.lengths == 1] = listed.values
        self.oov[split][f.name].update(column)
      columns[f.name] = column
    for f in self.schema.numerical:
      columns[f.name] = block.values[f.name].astype(np.float32)
    for key in self.schema.keys:
      columns[key] = block.keys[key]
    first, second = self.schema.labels
    columns[first], columns[second] = block.click, block.conversion
    return columns

  def close(self) -> None:
    empty = {f.name: (records.RaggedColumn(np.zeros(0, np.int64),
                                           np.zeros(1, np.int64))
                      if f.multivalent else np.zeros(0, np.int64))
             for f in self.schema.categorical}
    empty.update({f.name: np.zeros(0, np.float32) for f in self.schema.numerical})
    empty.update({k: np.zeros(0, np.int64)
                  for k in (*self.schema.keys, *self.schema.labels)})
    for split, writer in self.writers.items():
      self.counts[split].shards = len(writer.close(empty))
