"""`--format=tfds`: a prepared TensorFlow Datasets dataset as converter input.

`--input` names a builder of `pipelines.data.tfds` with its config
(`aliexpress/us`; a name alone, `ali_ccp`, means its first config), prepared
beforehand from the downloaded files in `--tfds_data_dir` (TFDS's default
folder when not given), as the builders' docstrings show:

  builder = tfds.builder("aliexpress/us", data_dir=DATA_DIR)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=MANUAL_DIR))

Its splits become the converter's: `train`, `validation` -> `valid` (so
`--valid_fraction` does not apply) and `test`; vocabularies and normalisation
are fitted on `train`, as for every layout. The builders left out unjoined
rows and conversions without a click (`--keep_conversions_without_click`
finds none) and refused bad rows, but the examples are checked like file
rows: a label other than 0/1 or a NaN/Inf number is a bad row, named
`name/config/split:N` (N: the example's 1-based position in its split); an
id equal to the builder's missing marker is a missing field.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from pipelines.data.formats import base
from pipelines.data.formats import lines
from pipelines.data.formats import table
from pipelines.data.records import RaggedColumn

NAME = "tfds"
BATCH_ROWS = lines.BATCH_LINES


def dataset_names() -> tuple[str, ...]:
  """`name/config` of every dataset `--format=tfds` reads."""
  from pipelines.data import tfds as builders  # registers them; loads TFDS
  return tuple(f"{b.name}/{c.name}" for b in builders.BUILDERS
               for c in b.BUILDER_CONFIGS)


def _builder(input_path: str, data_dir: str | None):
  """The prepared builder named by `--input`.

  Raises:
    ValueError: not a dataset of `dataset_names()` (listed).
    FileNotFoundError: not prepared in `data_dir`, with what to run.
  """
  import tensorflow_datasets as tfds  # heavy: only for this format
  names = dataset_names()
  name = input_path.strip("/")
  if "/" not in name:  # a builder alone: its first config
    name = next((n for n in names if n.split("/")[0] == name), name)
  if name not in names:
    raise ValueError(f"--input={input_path!r} is not a TFDS dataset that "
                     f"--format={NAME} reads; valid: {', '.join(names)}")
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    where = f", data_dir={data_dir!r}" if data_dir else ""
    raise FileNotFoundError(
        f"TFDS dataset {name} is not prepared in {builder.data_dir}; prepare "
        "it from the downloaded files (listed in the docstring of "
        f"{type(builder).__module__}): python -c \"import tensorflow_datasets "
        f"as tfds, pipelines.data.tfds; tfds.builder('{name}'{where})"
        ".download_and_prepare(download_config=tfds.download.DownloadConfig("
        "manual_dir='MANUAL_DIR'))\"")
  return builder


def sources(input_path: str, data_dir: str | None = None
            ) -> dict[str, base.Source]:
  """split -> the examples of the TFDS split it comes from (those present)."""
  from pipelines.data.tfds import common  # loads TFDS
  builder = _builder(input_path, data_dir)
  return {split: TfdsSource(builder, name)
          for split, name in common.TFDS_SPLITS.items()
          if name in builder.info.splits}


class TfdsSource(base.Source):
  """The examples of one split of a prepared dataset, a block at a time.

  Args:
    builder: a prepared builder of `pipelines.data.tfds`; its class's
      `CONVERTER_FIELDS` says which features are ids, lists and numbers.
    split: the TFDS split name.
  """

  def __init__(self, builder, split: str):
    self.builder, self.split = builder, split
    self.fields = type(builder).CONVERTER_FIELDS
    dataset = f"{builder.name}/{builder.builder_config.name}"
    self.input_name = f"tfds:{dataset} ({builder.data_dir})"
    self.where = f"{dataset}/{split}"
    self.paths = []  # examples, not files
    self.categorical = self.fields.categorical
    if self.fields.missing_id is not None:  # fields seen in train: the schema
      self.categorical = None
      self.field_order = self.fields.categorical.index
    self.numerical = self.fields.numerical
    self.keys = self.fields.keys
    self.multivalent = frozenset(self.fields.lists)
    self._info = builder.info.splits[split]

  def count_rows(self) -> int:
    return self._info.num_examples

  @property
  def total_bytes(self) -> int:
    return int(self._info.num_bytes)

  def blocks(self, errors: base.BadRows, progress,
             stop_index: int | None = None) -> Iterator[base.Block]:
    ds = self.builder.as_dataset(split=self.split, shuffle_files=False)
    bytes_per_row = self.total_bytes / max(self.count_rows(), 1)
    index = 0
    for batch in ds.ragged_batch(BATCH_ROWS):  # lists: RaggedTensors
      if stop_index is not None and index >= stop_index:
        return
      columns = {k: (RaggedColumn(v.flat_values.numpy(), v.row_splits.numpy())
                     if isinstance(v, tf.RaggedTensor) else v.numpy())
                 for k, v in batch.items()}
      block = examples_block(columns, self.fields, self.where, index, errors)
      rows = len(columns[F.CLICK])
      if progress is not None:
        progress.update(rows=rows, nbytes=round(rows * bytes_per_row))
      yield block
      index += rows


def _problems(columns: dict, fields, replace_non_finite: bool) -> dict:
  """Position -> (kind, detail) of the first problem of each bad example."""
  problems = {}
  for name in F.LABEL_KEYS:
    labels = columns[name]
    for i in np.flatnonzero(~np.isin(labels, (0, 1))):
      problems.setdefault(int(i), (base.BAD_LABEL, f"{name} is {labels[i]}; "
                                   "valid labels: [0, 1]"))
  if not replace_non_finite:
    for name in fields.numerical:
      values = columns[name]
      for i in np.flatnonzero(~np.isfinite(values)):
        problems.setdefault(int(i), (base.NON_FINITE, table.non_finite_detail(
            name, float(values[i]))))
  return problems


def examples_block(columns: dict, fields, where: str, index: int,
                   errors: base.BadRows) -> base.Block:
  """One batch of examples -> the Block of its good rows.

  Args:
    columns: feature -> [n] int64 ids or float values, or a RaggedColumn of
      n rows for a list feature; `click` and `conversion` [n] int64.
    fields: the builder's `ConverterFields`.
    where: `name/config/split`, for messages.
    index: the split ordinal of the first example.
    errors: the bad-row policy (raises at the first bad row unless skipping).

  Returns:
    The good rows: single ids in `ids`, or as lists of at most one id when
    the builder marks missing ids (a field absent from every row is left
    out, so that only fields seen make the schema); lists in `lists`.
  """
  problems = _problems(columns, fields, errors.non_finite == "replace")
  for i in sorted(problems):
    errors.report(where, index + i + 1, *problems[i])
  good = np.ones(len(columns[F.CLICK]), bool)
  good[list(problems)] = False
  ids, lists, values, replaced = {}, {}, {}, {}
  for name in fields.categorical:
    if name in fields.lists:
      column = base.take(columns[name], good)
    elif fields.missing_id is None:
      ids[name] = columns[name][good]
      continue
    else:
      present = columns[name][good] != fields.missing_id
      column = RaggedColumn.from_lengths(columns[name][good][present],
                                         present.astype(np.int64))
    if len(column.values):
      lists[name] = column
  for name in fields.numerical:
    values[name] = columns[name][good].astype(np.float64)
    if errors.non_finite == "replace":  # only replaceable values are left
      replaced[name] = ~np.isfinite(values[name])
      values[name][replaced[name]] = table.NUMERICAL_DEFAULT
  positions = np.flatnonzero(good)
  return base.Block(
      path=where, index=index + positions, lines=index + positions + 1,
      ids=ids, lists=lists, values=values,
      click=columns[F.CLICK][good].astype(np.int64),
      conversion=columns[F.CONVERSION][good].astype(np.int64),
      skipped=[(index + i, problems[i][0]) for i in sorted(problems)],
      replaced=replaced, keys={k: columns[k][good] for k in fields.keys})
