"""How a data directory's records are laid out, and the layout-aware helpers.

  blocks: one `tf.train.Example` per block of up to `block_rows` rows, column
          by column (blocks.py): what training reads fastest, the default of
          the synthetic generator and the converter;
  rows:   one `tf.train.Example` per row (records.py): the interchange and
          serving format, and every data directory written before blocks.

The layout is recorded in `schema.json` and `shards.json` (`"layout"`,
`"block_rows"`); a directory that records none holds rows. Writers go through
`write_sharded` / `write_file` and `save`; readers through `load`,
`count_rows` and `row_examples` (per-row Examples whatever the layout: the
warm-up records of an export, records to score).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from adaftr_tf import choices
from adaftr_tf import features as F
import tensorflow as tf

from pipelines.data import blocks
from pipelines.data import records

BLOCKS, ROWS = choices.options(choices.RecordLayout)


@dataclasses.dataclass(frozen=True)
class Layout:
  """A record layout: `name` (blocks | rows) and rows per block (blocks)."""

  name: str = BLOCKS
  block_rows: int = blocks.DEFAULT_BLOCK_ROWS

  def __post_init__(self):
    choices.check("layout", self.name, choices.RecordLayout)
    if not isinstance(self.block_rows, int) or self.block_rows < 1:
      raise ValueError(f"block_rows={self.block_rows!r} must be an int >= 1")

  @property
  def is_blocks(self) -> bool:
    return self.name == BLOCKS

  def to_dict(self) -> dict:
    """What schema.json and shards.json record."""
    return ({"layout": BLOCKS, "block_rows": self.block_rows}
            if self.is_blocks else {"layout": ROWS})

  def describe(self) -> str:
    return (f"row blocks of {self.block_rows} rows" if self.is_blocks
            else "one tf.train.Example per row")


ROWS_LAYOUT = Layout(ROWS)


def folder_digest(described, layout: Layout) -> str:
  """10 hex digits naming a folder of data `described` (JSON-able) written
  in `layout`: for row blocks a hash of both, for rows of `described` alone
  (per-row data keeps the folder name it had before the layouts, so it is
  never taken for blocks)."""
  if layout.is_blocks:
    described = {"synthetic": described, **layout.to_dict()}
  text = json.dumps(described, sort_keys=True)
  return hashlib.sha1(text.encode()).hexdigest()[:10]


def from_config(data_config) -> Layout:
  """The layout a `DataConfig` asks the synthetic generator for."""
  return Layout(data_config.layout, data_config.block_rows)


def write_file(columns, path: str, layout: Layout) -> int:
  """One TFRecord file of `columns` in `layout`; returns the rows written."""
  if layout.is_blocks:
    return blocks.write_blocks(columns, path, layout.block_rows)
  return records.write_examples(columns, path)


def write_sharded(columns, directory: str, split: str, num_shards: int,
                  layout: Layout) -> list[str]:
  """`num_shards` contiguous files of `columns` in `layout`."""
  if layout.is_blocks:
    return blocks.write_sharded(columns, directory, split, num_shards,
                                layout.block_rows)
  return records.write_sharded(columns, directory, split, num_shards)


def save(directory: str, schema: F.FeatureSchema, layout: Layout) -> None:
  """Completes a dataset: schema.json and shards.json, both with `layout`."""
  schema.save(directory, layout.to_dict())
  records.write_manifest(directory, layout.to_dict())


def _recorded(path: str) -> dict | None:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as err:
      raise ValueError(f"{path} is not valid JSON: {err}") from err
  return data if isinstance(data, dict) else None


def load(directory: str) -> Layout:
  """The layout `directory` records (`rows` when it records none).

  Raises:
    ValueError: an unknown layout, or schema.json and shards.json that
      disagree (naming both).
  """
  found = {}
  for name in (F.SCHEMA_FILE, records.MANIFEST_FILE):
    data = _recorded(os.path.join(directory, name))
    if data is not None:
      found[name] = (data.get("layout", ROWS),
                     data.get("block_rows", blocks.DEFAULT_BLOCK_ROWS))
  if len(set(found.values())) > 1:
    raise ValueError(f"{directory}: the record layouts of {F.SCHEMA_FILE} "
                     f"and {records.MANIFEST_FILE} differ ({found}); "
                     "regenerate or re-convert the data")
  if not found:
    return ROWS_LAYOUT
  name, block_rows = next(iter(found.values()))
  try:
    return Layout(name, block_rows)
  except ValueError as err:
    raise ValueError(f"{directory} records a bad layout: {err}") from err


def count_rows(directory: str, split: str) -> int:
  """Rows in a split's shards (reads them)."""
  paths = records.list_shards(directory, split)
  if load(directory).is_blocks:
    return blocks.count_rows(paths)
  return int(tf.data.TFRecordDataset(paths).reduce(
      tf.constant(0, tf.int64), lambda n, _: n + 1))


def row_examples(paths, num: int | None, layout: Layout) -> list[bytes]:
  """The first `num` rows (None: all) of `paths`, in file order, as per-row
  serialised `tf.train.Example`s (block records are re-serialised)."""
  out = []
  for record in tf.data.TFRecordDataset(paths):
    if num is not None and len(out) >= num:
      break
    if layout.is_blocks:
      out += blocks.to_examples(record.numpy(),
                                None if num is None else num - len(out))
    else:
      out.append(record.numpy())
  return out


def split_examples(directory: str, split: str,
                   num: int | None = None) -> list[bytes]:
  """`row_examples` of a split of a data directory."""
  return row_examples(records.list_shards(directory, split), num,
                      load(directory))


def write_split_examples(directory: str, split: str, path: str,
                         num: int | None = None) -> str:
  """Writes `split_examples` to the TFRecord file `path` (records to score
  or replay, whatever the data's layout); returns `path`."""
  with tf.io.TFRecordWriter(path) as writer:
    for example in split_examples(directory, split, num):
      writer.write(example)
  return path
