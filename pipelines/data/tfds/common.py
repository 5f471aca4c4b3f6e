"""What both builders share: splits carved like the converter, rows -> dicts."""

from __future__ import annotations

import collections
import dataclasses
import inspect
import os
from typing import Iterator

from absl import logging
from etils import epath
import numpy as np
from tensorflow_datasets.core import utils as tfds_utils

from pipelines.data.formats import base
from pipelines.data.formats import splitting

VALID_FRACTION = 0.1
TFDS_SPLITS = {splitting.TRAIN: "train", splitting.VALID: "validation",
               splitting.TEST: "test"}
MISSING_ID = -1  # a single-valued id field absent from a row


@dataclasses.dataclass(frozen=True)
class ConverterFields:
  """How `pipelines.convert --format=tfds` reads a builder's examples.

  Attributes:
    categorical: the int64 id features in schema order (lists included).
    lists: those of `categorical` that are variable-length id lists.
    numerical: the float features in schema order.
    missing_id: the id marking a single-valued field absent from a row, or
      None when every row has every field. With a marker the schema takes
      the fields seen in the train rows, as for the token layouts.
    keys: int64 row keys (e.g. the search session), written beside the
      features for evaluation (`FeatureSchema.keys`).
  """

  categorical: tuple[str, ...]
  lists: tuple[str, ...] = ()
  numerical: tuple[str, ...] = ()
  missing_id: int | None = None
  keys: tuple[str, ...] = ()


class LocalCodePath:
  """Builder mixin: `code_path` from the class's file.

  TFDS 4.9.10's own `code_path` touches `importlib_resources`, which it does
  not install on Python >= 3.9, so preparing any builder defined outside
  TFDS fails with ModuleNotFoundError.
  """

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(inspect.getfile(cls))


def find_file(manual_dir, name: str, instructions: str) -> str:
  """The first `name` in `manual_dir` or below it (local files: the parsers
  read them with `open`)."""
  for folder, _, files in sorted(os.walk(str(manual_dir))):
    if name in files:
      return os.path.join(folder, name)
  raise FileNotFoundError(f"no {name} in {manual_dir} or below; download and "
                          f"unpack the files:\n{instructions}")


def split_plan(sources: dict[str, base.Source], valid_fraction: float):
  """(TFDS split -> (converter split, source), valid boundary of train)."""
  lines = sources[splitting.TRAIN].count_rows()
  boundary = lines - splitting.valid_lines(lines, valid_fraction)
  plan = {TFDS_SPLITS[s]: (s, sources[splitting.TRAIN])
          for s in (splitting.TRAIN, splitting.VALID)}
  if splitting.TEST in sources:
    plan[TFDS_SPLITS[splitting.TEST]] = (splitting.TEST,
                                         sources[splitting.TEST])
  return plan, boundary


def examples(split: str, source: base.Source, boundary: int,
             single: tuple[str, ...], lists: tuple[str, ...],
             numerical: tuple[str, ...], keys: tuple[str, ...] = ()
             ) -> Iterator[tuple[str, dict]]:
  """Yields (key, example) of the rows of `source` routed to `split`.

  Bad rows raise `base.BadRowError` (file, line); rows without a join partner
  and conversions without a click are left out and logged with their counts.
  A single-valued field missing from a row is -1; one listing several ids is
  a bad row.
  """
  counts = collections.Counter()
  source_name = splitting.TEST if split == splitting.TEST else splitting.TRAIN
  for block in source.blocks(base.BadRows(skip=False), None):
    counts["unjoined"] += int(np.sum(splitting.route(
        source_name, block.unjoined, boundary)[split]))
    block = block.select(splitting.route(source_name, block.index,
                                         boundary)[split])
    cwc = (block.conversion == 1) & (block.click == 0)
    counts["conversion_without_click"] += int(cwc.sum())
    block = block.select(~cwc)
    columns = _dense(block, single)
    for i in range(len(block)):
      example = {name: columns[name][i] for name in single}
      for name in lists:
        column = block.lists.get(name)
        example[name] = ([] if column is None else
                         column.values[column.row_splits[i]:
                                       column.row_splits[i + 1]])
      example.update({name: block.values[name][i] for name in numerical})
      example.update({name: block.keys[name][i] for name in keys})
      example.update(click=block.click[i], conversion=block.conversion[i])
      yield f"{split}-{block.index[i]}", example
  logging.info("%s: left out %d unjoined rows and %d conversions without a "
               "click", split, counts["unjoined"],
               counts["conversion_without_click"])


def _dense(block: base.Block, names: tuple[str, ...]) -> dict[str, np.ndarray]:
  """Single-valued ids; from one-id lists for token layouts (-1 if absent)."""
  columns = {}
  for name in names:
    if name in block.ids:
      columns[name] = block.ids[name]
      continue
    column = np.full(len(block), MISSING_ID, np.int64)
    listed = block.lists.get(name)
    if listed is not None:
      many = np.flatnonzero(listed.lengths > 1)
      if len(many):
        raise base.BadRowError(block.path, int(block.lines[many[0]]),
                               base.REPEATED_FIELD,
                               f"field {name} has several ids")
      column[listed.lengths == 1] = listed.values
    columns[name] = column
  return columns
