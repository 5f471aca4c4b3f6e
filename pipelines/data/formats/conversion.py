"""The converter: any layout -> sharded TFRecord + schema.json + data_report.json.

Three streaming passes over the input, memory bounded by a block of rows, the
shard buffer, the vocabulary counts and (AliExpress raw) the user table:
  0. count the data lines of the train files (a byte scan), which fixes the
     validation boundary: the last `valid_fraction` of them;
  1. statistics on the train rows before the boundary only: id counts ->
     vocabularies (min count, cap) or hash buckets, mean/std of numericals,
     which fields hold lists;
  2. write: every row of every split is parsed again, routed to
     train/valid/test, checked, counted and written.
Output goes to `<output_dir>.partial` and is renamed when complete, so a
failed conversion never leaves a folder that looks converted.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import NON_FINITE_POLICIES
from pipelines.data import files
from pipelines.data import formats
from pipelines.data import records
from pipelines.data.formats import base
from pipelines.data.formats import lines
from pipelines.data.formats import normalisation
from pipelines.data.formats import report as report_lib
from pipelines.data.formats import splitting
from pipelines.data.formats import vocabulary
from pipelines.data.formats import writer as writer_lib


@dataclasses.dataclass(frozen=True)
class Options:
  """Conversion options (the flags of `python -m pipelines.convert`)."""

  skip_bad_rows: bool = False
  keep_conversions_without_click: bool = False
  valid_fraction: float = 0.1
  min_count: int = 1
  max_vocab_size: int = 0
  hash_buckets: int = 0
  shard_rows: int = 500_000
  buffer_values: int = 20_000_000
  overwrite: bool = False
  progress: bool = True
  non_finite: str = "error"

  def validate(self) -> "Options":
    if self.non_finite not in NON_FINITE_POLICIES:
      raise ValueError(f"--non_finite={self.non_finite!r} is not valid; "
                       f"choose one of {NON_FINITE_POLICIES}")
    for key in ("min_count", "shard_rows", "buffer_values"):
      if getattr(self, key) < 1:
        raise ValueError(f"--{key}={getattr(self, key)} must be >= 1")
    for key in ("max_vocab_size", "hash_buckets"):
      if getattr(self, key) < 0:
        raise ValueError(f"--{key}={getattr(self, key)} must be >= 0")
    splitting.valid_lines(2, self.valid_fraction)
    return self


class _Stats:
  """Pass-1 statistics of the train rows before the boundary."""

  def __init__(self, source: base.Source, count_ids: bool):
    self.source, self.count_ids = source, count_ids
    self.ids = collections.defaultdict(lambda: vocabulary.IdCounter(count_ids))
    self.moments = collections.defaultdict(normalisation.Moments)

  def update(self, block: base.Block) -> None:
    for name, ids in block.ids.items():
      self.ids[name].update(ids)
    for name, column in block.lists.items():
      self.ids[name].update(column.values, int(column.lengths.max(initial=0)))
    for name, values in block.values.items():
      self.moments[name].update(values)

  def schema(self, options: Options) -> F.FeatureSchema:
    names = self.source.categorical
    if names is None:  # discovered: every field seen in the train rows
      names = sorted(self.ids, key=self.source.field_order)
    categorical = tuple(
        vocabulary.fit(name, self.ids[name],
                       name in self.source.multivalent
                       or self.ids[name].max_length > 1,
                       options.min_count, options.max_vocab_size,
                       options.hash_buckets) for name in names)
    numerical = tuple(normalisation.fit(name, self.moments[name])
                      for name in self.source.numerical)
    if not categorical and not numerical:
      raise ValueError("the train split has no usable rows: no field seen")
    return F.FeatureSchema(categorical, numerical)


def _drop_mask(block: base.Block, options: Options) -> np.ndarray:
  """[n] bool: conversions without a click (dropped unless kept)."""
  cwc = (block.conversion == 1) & (block.click == 0)
  return cwc & (not options.keep_conversions_without_click)


def fit(source: base.Source, boundary: int, options: Options,
        errors: base.BadRows) -> tuple:
  """Pass 1: (schema, stats) from the train rows before `boundary`."""
  stats = _Stats(source, count_ids=options.hash_buckets == 0)
  progress = lines.Progress("pass 1/2 statistics (train)", source.total_bytes,
                            options.progress)
  for block in source.blocks(errors, progress, stop_index=boundary):
    stats.update(block.select((block.index < boundary)
                              & ~_drop_mask(block, options)))
  progress.close()
  return stats.schema(options), stats


class _Writer:
  """Pass 2: routes blocks to splits, checks, counts and writes them."""

  def __init__(self, schema: F.FeatureSchema, directory: str, options: Options,
               errors: base.BadRows, splits: tuple[str, ...]):
    self.schema, self.options, self.errors = schema, options, errors
    self.counts = {s: report_lib.SplitCounts() for s in splits}
    self.writers = {s: writer_lib.SplitWriter(directory, s, options.shard_rows,
                                              options.buffer_values)
                    for s in splits}
    self.oov = {s: {f.name: vocabulary.OovCounter(f) for f in schema.categorical}
                for s in splits}
    self.lengths = {s: collections.defaultdict(lambda: [0, 0]) for s in splits}
    self.unknown = collections.Counter()
    self.blank = collections.Counter()
    self._names = set(schema.feature_names)

  def add_block(self, source: str, block: base.Block, boundary: int) -> None:
    self.blank[source] += block.blank
    good = splitting.route(source, block.index, boundary)
    skipped_index = np.asarray([i for i, _ in block.skipped], np.int64)
    skipped = splitting.route(source, skipped_index, boundary)
    unjoined = splitting.route(source, block.unjoined, boundary)
    for split, mask in good.items():
      counts = self.counts[split]
      for (_, kind), routed in zip(block.skipped, skipped[split]):
        if routed:
          counts.skipped[kind] += 1
      counts.unjoined += int(unjoined[split].sum())
      self._add_rows(split, block.select(mask), counts)

  def _add_rows(self, split: str, block: base.Block,
                counts: report_lib.SplitCounts) -> None:
    counts.conversions_without_click += int(
        np.sum((block.conversion == 1) & (block.click == 0)))
    drop = _drop_mask(block, self.options)
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
    columns[F.CLICK] = block.click
    columns[F.CONVERSION] = block.conversion
    return columns

  def close(self) -> None:
    empty = {f.name: (records.RaggedColumn(np.zeros(0, np.int64),
                                           np.zeros(1, np.int64))
                      if f.multivalent else np.zeros(0, np.int64))
             for f in self.schema.categorical}
    empty.update({f.name: np.zeros(0, np.float32) for f in self.schema.numerical})
    empty.update({k: np.zeros(0, np.int64) for k in F.LABEL_KEYS})
    for split, writer in self.writers.items():
      self.counts[split].shards = len(writer.close(empty))


def _output(output_dir: str, overwrite: bool) -> str:
  """The `.partial` folder to write into (emptied)."""
  if files.is_nonempty_dir(output_dir) and not overwrite:
    raise FileExistsError(f"--output_dir {output_dir} exists and is not empty; "
                          "choose another folder or pass --overwrite")
  partial = output_dir.rstrip("/") + ".partial"
  files.remove_dir(partial)
  tf.io.gfile.makedirs(partial)
  return partial


def convert(layout: str, input_path: str, output_dir: str,
            options: Options = Options(),
            log: Callable[[str], None] = print) -> dict:
  """Converts a dataset; returns (and writes, and logs) its data report.

  Args:
    layout: one of `pipelines.data.formats.LAYOUTS`.
    input_path: a file or folder in that layout.
    output_dir: where shards, schema.json and data_report.json go.
    options: see `Options`.
    log: receives the printed report.

  Raises:
    ValueError: unknown layout or bad option (naming the valid choices).
    FileNotFoundError: missing input files (naming the expected names).
    base.BadRowError: the first bad row, unless `skip_bad_rows`.
    FileExistsError: a non-empty output_dir without `overwrite`.
  """
  options.validate()
  sources = formats.get(layout).sources(input_path)
  partial = _output(output_dir, options.overwrite)
  try:
    report = _convert(layout, input_path, sources, partial, options)
  except BaseException:
    files.remove_dir(partial)
    raise
  files.remove_dir(output_dir)
  files.move_dir(partial, output_dir)
  log(report_lib.format_text(report))
  return report


def _convert(layout, input_path, sources, directory, options) -> dict:
  line_counts = {name: s.count_rows() for name, s in sources.items()}
  train_lines = line_counts[splitting.TRAIN]
  boundary = train_lines - splitting.valid_lines(train_lines,
                                                 options.valid_fraction)
  errors = base.BadRows(options.skip_bad_rows, non_finite=options.non_finite)
  schema, stats = fit(sources[splitting.TRAIN], boundary, options, errors)
  splits = (splitting.TRAIN, splitting.VALID) + tuple(
      s for s in sources if s != splitting.TRAIN)
  state = _Writer(schema, directory, options, errors, splits)
  for name, source in sources.items():
    progress = lines.Progress(f"pass 2/2 writing ({name})", source.total_bytes,
                              options.progress)
    for block in source.blocks(errors, progress):
      state.add_block(name, block, boundary)
    progress.close()
  state.close()
  records.write_manifest(directory)
  _check_accounting(state, line_counts)
  if not state.counts[splitting.TRAIN].kept:
    raise ValueError(
        f"no usable train rows in {input_path}: "
        f"{state.counts[splitting.TRAIN].to_dict()['read']} read, none kept "
        f"(bad rows: {dict(state.counts[splitting.TRAIN].skipped)}); an empty "
        "or header-only file cannot be trained on")
  schema.save(directory)
  result = {
      "format": layout, "input": os.path.abspath(input_path),
      "options": dataclasses.asdict(options),
      "valid_boundary_line_index": boundary,
      "splits": {s: state.counts[s].to_dict() for s in splits},
      "fields": report_lib.field_report(
          schema, {k: c.cardinality for k, c in stats.ids.items()}, state.oov,
          state.lengths, stats.moments),
      "unknown_fields": dict(state.unknown),
      "blank_lines": dict(state.blank),
      "sources": {k: s.side_report for k, s in sources.items()
                  if getattr(s, "side_report", None)},
      "bad_row_examples": errors.examples}
  report_lib.write(directory, result)
  return result


def _check_accounting(state: _Writer, line_counts: dict) -> None:
  """kept + skipped + dropped = read, against the independent line count."""
  for source, expected in line_counts.items():
    splits = ((splitting.TRAIN, splitting.VALID) if source == splitting.TRAIN
              else (source,))
    read = sum(state.counts[s].read for s in splits) + state.blank[source]
    if read != expected:
      raise RuntimeError(f"row accounting of the {source} files is off: "
                         f"{expected} data lines but {read} accounted for "
                         f"({[state.counts[s].to_dict() for s in splits]})")
