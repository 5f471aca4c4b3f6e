"""Ali-CCP, raw Tianchi files (dataset 408, the ESMM data), joined.

Per split (train, test), two comma-separated files without header:
  `sample_skeleton_{split}.csv`: `sample_id,click,conversion,
    common_feature_index,feature_num,feature_list` (one impression a line);
  `common_features_{split}.csv`: `common_feature_index,feature_num,
    feature_list` (the user/session features shared by many impressions).
A feature list is `feature_num` tokens `field\\x02feature_id\\x03value` joined
by `\\x01`. An impression's fields are its own tokens plus those of the common
row with its index; every id of a repeated field is kept (a variable-length
feature), nothing is truncated. The values are checked to be numbers but not
stored (ids only, as in ESMM). `conversion` is click-and-purchase; rows with a
conversion but no click exist and are dropped by default (counted).

Memory stays bounded: the common file is indexed by byte offset (key ->
offset, ~100 bytes per common row) and rows are parsed on demand through a
small LRU cache (impressions of a session are consecutive). A skeleton row
whose common row is missing, or bad and skipped, counts as unjoined.
`--input`: the folder holding the four files, or any of them.
"""

from __future__ import annotations

import collections
import os

import numpy as np

from pipelines.data.formats import base
from pipelines.data.formats import tokens

NAME = "aliccp_raw"
CACHE_ROWS = 4096
_BAD = object()


class CommonFeatures:
  """Random access to the rows of a `common_features_*.csv` by their key."""

  def __init__(self, path: str):
    self.path = path
    self.offsets: dict[str, tuple[int, int]] | None = None
    self._read = self._duplicates = 0
    self._bad_keys: set[str] = set()
    self._cache: collections.OrderedDict = collections.OrderedDict()
    self._file = None

  @property
  def side_report(self) -> dict:
    return {"common_rows_read": self._read,
            "common_rows_skipped_bad": self._duplicates + len(self._bad_keys)}

  def index(self, errors: base.BadRows, progress=None) -> None:
    """Maps each key to (byte offset, line number); once per instance."""
    if self.offsets is not None:
      return
    offsets, offset = {}, 0
    with open(self.path, "rb") as f:
      for number, line in enumerate(f, 1):
        if progress is not None:
          progress.bytes += len(line)
        key = line.split(b",", 1)[0].decode("utf-8", "replace").strip()
        if key in offsets:
          errors.report(self.path, number, base.DUPLICATE_KEY,
                        f"common_feature_index {key!r} already on line "
                        f"{offsets[key][1]}")
          self._duplicates += 1
        elif line.strip():
          offsets[key] = (offset, number)
        self._read += bool(line.strip())
        offset += len(line)
    self.offsets = offsets

  def get(self, key: str, errors: base.BadRows):
    """The parsed fields of the row `key`; raises tokens.Unjoined if none."""
    self.index(errors)
    fields = self._cache.get(key)
    if fields is not None:
      self._cache.move_to_end(key)
    else:
      fields = self._cache[key] = self._parse(key, errors)
      if len(self._cache) > CACHE_ROWS:
        self._cache.popitem(last=False)
    if fields is _BAD:
      raise tokens.Unjoined()
    return fields

  def _parse(self, key: str, errors: base.BadRows):
    if key not in self.offsets:
      raise tokens.Unjoined()
    offset, number = self.offsets[key]
    if self._file is None:
      self._file = open(self.path, "rb")
    self._file.seek(offset)
    text = self._file.readline().rstrip(b"\r\n").decode("utf-8", "replace")
    try:
      cells = text.split(",")
      if len(cells) != 3:
        raise tokens.TokenError(base.WRONG_COLUMNS, f"{len(cells)} columns, "
                                "expected 3 (common_feature_index,"
                                "feature_num,feature_list)")
      return {name: np.asarray(ids, np.int64) for name, ids in
              _feature_list(cells[1], cells[2], 2).items()}
    except tokens.TokenError as err:
      errors.report(self.path, number, err.kind, str(err))
      self._bad_keys.add(key)
      return _BAD


def _feature_list(count: str, text: str, column: int):
  """Parses `feature_num` and its `\\x01`-joined token list."""
  try:
    expected = int(count)
  except ValueError:
    raise tokens.TokenError(base.NON_NUMERIC, f"column {column} (feature_num) "
                            f"is {count!r}, expected an integer") from None
  items = text.split("\x01") if text else []
  if len(items) != expected:
    raise tokens.TokenError(base.BAD_TOKEN, f"feature_num is {expected} but "
                            f"feature_list has {len(items)} tokens")
  return tokens.parse_tokens(items, "\x02", "\x03", where="feature_list token")


class SkeletonSource(tokens.TokenSource):
  """Impressions of `sample_skeleton_*.csv` joined with their common row."""

  def __init__(self, skeleton: str, common: str):
    super().__init__([skeleton])
    self.common = CommonFeatures(common)

  @property
  def side_report(self) -> dict:
    return self.common.side_report

  @property
  def total_bytes(self) -> int:
    """Bytes the next pass reads: the common file only while unindexed."""
    unindexed = self.common.offsets is None
    return super().total_bytes + unindexed * os.path.getsize(self.common.path)

  def blocks(self, errors: base.BadRows, progress, stop_index=None):
    self.common.index(errors, progress)
    yield from super().blocks(errors, progress, stop_index)

  def parse_line(self, text: str, errors: base.BadRows):
    cells = text.split(",")
    if len(cells) != 6:
      raise tokens.TokenError(base.WRONG_COLUMNS, f"{len(cells)} columns, "
                              "expected 6 (sample_id,click,conversion,"
                              "common_feature_index,feature_num,feature_list)")
    click = tokens.parse_label(cells[1], 2, "click")
    conversion = tokens.parse_label(cells[2], 3, "conversion")
    own = _feature_list(cells[4], cells[5], 5)
    return click, conversion, (self.common.get(cells[3].strip(), errors), own)


def _folder(input_path: str) -> str:
  if not os.path.exists(input_path):
    raise FileNotFoundError(f"--input {input_path} does not exist")
  return input_path if os.path.isdir(input_path) else os.path.dirname(
      os.path.abspath(input_path))


def sources(input_path: str) -> dict[str, base.Source]:
  """split -> joined skeleton source (test only when both its files exist)."""
  folder = _folder(input_path)
  return base.joined_sources(
      f"Ali-CCP raw (in {folder})",
      {split: (os.path.join(folder, f"sample_skeleton_{split}.csv"),
               os.path.join(folder, f"common_features_{split}.csv"))
       for split in ("train", "test")}, SkeletonSource)
