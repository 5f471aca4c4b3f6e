"""Streaming shard writer: bounded buffers of rows -> `{split}-i-of-n.tfrecord`.

Rows arrive a block at a time; a shard is written (with `records.write_examples`)
when the buffer holds `shard_rows` rows or `buffer_values` values, so memory
is bounded whatever the split size. Shards get temporary names until the
split is closed, when their count is known and they are renamed to the
`records.shard_name` pattern that `make_dataset` lists.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from pipelines.data import records
from pipelines.data.formats import base


class SplitWriter:
  """Writes the rows of one split.

  Args:
    directory: output folder (exists).
    split: split name.
    shard_rows: rows per shard at most.
    buffer_values: values (ids in lists included) buffered at most.
  """

  def __init__(self, directory: str, split: str, shard_rows: int,
               buffer_values: int):
    self.directory, self.split = directory, split
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
    self.rows += records.write_examples(merged, path)
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
      records.write_examples(empty_columns, path)
      self.paths.append(path)
    final = []
    for i, path in enumerate(self.paths):
      target = os.path.join(self.directory,
                            records.shard_name(self.split, i, len(self.paths)))
      tf.io.gfile.rename(path, target, overwrite=True)
      final.append(target)
    self.paths = final
    return final
