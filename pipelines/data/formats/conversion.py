"""The converter: any layout -> sharded TFRecord (row blocks by default, or
one Example per row: `Options.record_layout`) + schema.json + data_report.json.

Three streaming passes over the input, memory bounded by a block of rows, the
shard buffer, the vocabulary counts and (AliExpress raw) the user table:
  0. count the data lines of each source split (a byte scan), which fixes
     the layout's `splitting.Splitter` (its module's `SPLITTER`, default
     `FileOrder`): valid = the last `valid_fraction` of the train files
     (none when the input has its own validation split: a TFDS dataset), or
     a seeded split of one pool of rows (`SeededRows`: census);
  1. statistics on the rows the splitter routes to train only: id counts ->
     vocabularies (min count, cap) or hash buckets, mean/std of numericals,
     which fields hold lists;
  2. write: every row of every split is parsed again, routed to
     train/valid/test by the same splitter, checked, counted and written.
Output goes to `<output_dir>.partial` and is moved into place when complete,
so a failed conversion never leaves a folder that looks converted.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Callable

import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import choices
from pipelines.data import files
from pipelines.data import formats
from pipelines.data import layout as layout_lib
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
  valid_fraction: float | None = None  # None: the layout's default
  split_seed: int | None = None  # seeded layouts only; None: DEFAULT_SEED
  min_count: int = 1
  max_vocab_size: int = 0
  hash_buckets: int = 0
  shard_rows: int = 500_000
  buffer_values: int = 20_000_000
  overwrite: bool = False
  progress: bool = True
  non_finite: str = "error"
  tfds_data_dir: str | None = None  # --format=tfds only (None: TFDS's own)
  record_layout: str = layout_lib.BLOCKS
  block_rows: int = layout_lib.blocks.DEFAULT_BLOCK_ROWS

  @property
  def layout(self) -> layout_lib.Layout:
    """The record layout of the output shards."""
    return layout_lib.Layout(self.record_layout, self.block_rows)

  def validate(self) -> "Options":
    choices.check("--non_finite", self.non_finite, choices.NonFinitePolicy)
    choices.check("--record_layout", self.record_layout,
                  choices.RecordLayout)
    for key in ("min_count", "shard_rows", "buffer_values", "block_rows"):
      if getattr(self, key) < 1:
        raise ValueError(f"--{key}={getattr(self, key)} must be >= 1")
    for key in ("max_vocab_size", "hash_buckets"):
      if getattr(self, key) < 0:
        raise ValueError(f"--{key}={getattr(self, key)} must be >= 0")
    if self.valid_fraction is not None:
      splitting.valid_lines(2, self.valid_fraction)
    return self


class _Stats:
  """Pass-1 statistics of the rows routed to train."""

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
    return F.FeatureSchema(categorical, numerical, self.source.label_names,
                           self.source.label_relation, self.source.keys)


def fit(source: base.Source, splitter: splitting.Splitter, options: Options,
        errors: base.BadRows) -> tuple:
  """Pass 1: (schema, stats) from the rows of the train source `splitter`
  routes to train (and that pass 2 does not drop)."""
  stats = _Stats(source, count_ids=options.hash_buckets == 0)
  progress = lines.Progress("pass 1/2 statistics (train)", source.total_bytes,
                            options.progress)
  for block in source.blocks(errors, progress, stop_index=splitter.stop_index):
    stats.update(block.select(
        splitter.train_rows(block.index)
        & ~writer_lib.drop_mask(block, options.keep_conversions_without_click,
                                source.label_relation)))
  progress.close()
  return stats.schema(options), stats


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
    input_path: a file or folder in that layout (`tfds`: a dataset name).
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
  sources, input_name, rule = _sources(layout, input_path, options)
  partial = _output(output_dir, options.overwrite)
  try:
    report = _convert(layout, input_name, sources, rule, partial, options)
  except BaseException:
    files.remove_dir(partial)
    raise
  files.remove_dir(output_dir)
  files.move_dir(partial, output_dir)
  log(report_lib.format_text(report))
  return report


def _sources(layout: str, input_path: str, options: Options):
  """(split -> Source, the input as the report names it, the layout's
  Splitter class).

  Raises:
    ValueError: a flag that does not apply to `layout`.
  """
  module = formats.get(layout)
  rule = getattr(module, "SPLITTER", splitting.FileOrder)
  if options.split_seed is not None and not rule.seeded:
    seeded = ", ".join(name for name, m in formats.LAYOUTS.items()
                       if getattr(m, "SPLITTER", splitting.FileOrder).seeded)
    raise ValueError(f"--split_seed applies to formats split by seed "
                     f"({seeded}), not to --format={layout}, which keeps "
                     "file order (valid = the end of the train files); "
                     "leave the flag out")
  if module is formats.tfds_dataset:  # a dataset name, not a path
    sources = module.sources(input_path, options.tfds_data_dir)
    name = sources[splitting.TRAIN].input_name
  elif options.tfds_data_dir:
    raise ValueError(f"--tfds_data_dir applies to --format="
                     f"{formats.tfds_dataset.NAME} only, not --format={layout}")
  else:
    sources = module.sources(input_path)
    name = os.path.abspath(input_path)
  if splitting.VALID in sources and options.valid_fraction:
    raise ValueError(f"--valid_fraction={options.valid_fraction} does not "
                     f"apply to --format={layout}: its validation split is "
                     "the valid split; leave the flag out (or set it to 0)")
  return sources, name, rule


def _convert(layout, input_name, sources, rule, directory, options) -> dict:
  line_counts = {name: s.count_rows() for name, s in sources.items()}
  splitter = rule.create(line_counts, options.valid_fraction,
                         options.split_seed)
  errors = base.BadRows(options.skip_bad_rows, non_finite=options.non_finite)
  schema, stats = fit(sources[splitting.TRAIN], splitter, options, errors)
  splits = splitter.splits(sources)
  state = writer_lib.RowWriter(
      schema, directory, errors, splits, options.shard_rows,
      options.buffer_values, options.keep_conversions_without_click,
      options.layout)
  for name, source in sources.items():
    progress = lines.Progress(f"pass 2/2 writing ({name})", source.total_bytes,
                              options.progress)
    for block in source.blocks(errors, progress):
      state.add_block(name, block, splitter)
    progress.close()
  state.close()
  _check_accounting(state, line_counts, splitter)
  if not state.counts[splitting.TRAIN].kept:
    raise ValueError(
        f"no usable train rows in {input_name}: "
        f"{state.counts[splitting.TRAIN].to_dict()['read']} read, none kept "
        f"(bad rows: {dict(state.counts[splitting.TRAIN].skipped)}); an empty "
        "or header-only file cannot be trained on")
  layout_lib.save(directory, schema, options.layout)
  result = {
      "format": layout, "input": input_name,
      "options": dataclasses.asdict(options),
      "split": splitter.describe(),
      "labels": list(schema.labels), "label_relation": schema.label_relation,
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


def _check_accounting(state: writer_lib.RowWriter, line_counts: dict,
                      splitter: splitting.Splitter) -> None:
  """kept + skipped + dropped = read, against the independent line count."""
  for source, expected in line_counts.items():
    splits = splitter.outputs(source)
    read = sum(state.counts[s].read for s in splits) + state.blank[source]
    if read != expected:
      raise RuntimeError(f"row accounting of the {source} files is off: "
                         f"{expected} data lines but {read} accounted for "
                         f"({[state.counts[s].to_dict() for s in splits]})")
