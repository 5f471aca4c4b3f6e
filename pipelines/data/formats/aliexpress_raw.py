"""AliExpress, raw Tianchi files (dataset 74690), joined on the search id.

Per country `cc` (nl, es, fr, us, ru) and split (train, test), two headerless
comma-separated files:
  `{cc}_user_{split}.csv`: 33 columns: search id, 7 categorical, 23 numerical,
    2 categorical;
  `{cc}_item_{split}.csv`: 49 columns: search id, 47 features (categorical at
    columns 19, 34, 35, 36, 40, 41 and 42, numerical elsewhere), and the label
    0 = impression, 1 = click, 2 = purchase (click and buy).
Every item row is one impression; it takes the features of the user row with
its search id. Features are named as in the preprocessed CSV (MTReclib's
order): categorical_1..9 user, 10..16 item; numerical_1..23 user, 24..63
item, so both AliExpress layouts give the same schema. Item rows without a
user row are counted as unjoined; a search id repeated in a user file is a
bad row. The user table of a split is held in memory as numpy arrays (about
150 bytes per search); item files stream. `--input`: the folder of one
country (or any of its files, which also picks the country when the folder
holds several).
"""

from __future__ import annotations

import glob
import os
import re
from typing import Iterator

import numpy as np

from pipelines.data.formats import base
from pipelines.data.formats import table
from pipelines.data.formats import tabular

NAME = "aliexpress_raw"
REPLACED = "replaced:"  # user-table column prefix: non-finite value replaced
COUNTRIES = ("nl", "es", "fr", "us", "ru")
ITEM_CATEGORICAL = (19, 34, 35, 36, 40, 41, 42)  # 1-based item columns
LABELS = (0, 1, 2)
KEY = "search_id"


def user_columns() -> tuple[table.Column, ...]:
  cat = [table.Column(f"categorical_{i}", table.ID) for i in range(1, 10)]
  num = [table.Column(f"numerical_{i}", table.VALUE) for i in range(1, 24)]
  return (table.Column(KEY, table.KEY), *cat[:7], *num, *cat[7:])


def item_columns() -> tuple[table.Column, ...]:
  columns, cat, num = [table.Column(KEY, table.KEY)], 10, 24
  for j in range(2, 49):
    if j in ITEM_CATEGORICAL:
      columns.append(table.Column(f"categorical_{cat}", table.ID))
      cat += 1
    else:
      columns.append(table.Column(f"numerical_{num}", table.VALUE))
      num += 1
  return (*columns, table.Column("label", table.LABEL, LABELS))


def _labels(ints):
  label = ints["label"]
  return (label >= 1).astype(np.int64), (label == 2).astype(np.int64)


class ItemSource(tabular.TableSource):
  """Item rows of one split joined with the user rows of the same split."""

  def __init__(self, item_path: str, user_path: str):
    super().__init__([item_path], item_columns(), header=False,
                     labels=_labels)
    self.users = tabular.TableSource([user_path], user_columns(), header=False)
    self.categorical = tuple(f"categorical_{i}" for i in range(1, 17))
    self.numerical = tuple(f"numerical_{i}" for i in range(1, 64))
    self.side_report: dict = {}
    self._table = None

  @property
  def total_bytes(self) -> int:
    """Bytes the next pass reads: the user file only until it is loaded."""
    return super().total_bytes + (self._table is None) * self.users.total_bytes

  def _load_users(self, errors: base.BadRows, progress):
    """Sorted search ids and their feature columns (bad rows reported)."""
    names = (*self.categorical[:9], *self.numerical[:23])
    flags = tuple(REPLACED + k for k in self.numerical[:23])
    parts = {k: [] for k in (KEY, "line", *names, *flags)}
    read = skipped = 0
    for _, first_line, _, size, parsed in self.users.parsed_batches(
        errors, progress):
      read += size - len(parsed.blank)
      skipped += len(parsed.skipped)
      parts["line"].append(first_line + parsed.positions)
      for k in (KEY, *names):
        parts[k].append(parsed.ints[k] if k in parsed.ints else parsed.floats[k])
      for k in self.numerical[:23]:
        parts[REPLACED + k].append(parsed.replaced.get(
            k, np.zeros(len(parsed.positions), bool)))
    columns = {k: np.concatenate(v) if v else np.zeros(0, np.int64)
               for k, v in parts.items()}
    keys, lines = columns.pop(KEY), columns.pop("line")
    order = np.argsort(keys, kind="stable")  # equal keys stay in line order
    sorted_keys = keys[order]
    repeat = np.r_[False, sorted_keys[1:] == sorted_keys[:-1]]
    first = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(keys))))
    for r in sorted(np.flatnonzero(repeat), key=lambda r: lines[order[r]]):
      errors.report(self.users.paths[0], int(lines[order[r]]),
                    base.DUPLICATE_KEY, f"search id {sorted_keys[r]} already "
                    f"on line {lines[order[first[r]]]}")
    keep = order[~repeat]
    self.side_report = {"user_rows_read": read,
                        "user_rows_skipped_bad": skipped + int(repeat.sum())}
    return keys[keep], {k: v[keep] for k, v in columns.items()}

  def blocks(self, errors: base.BadRows, progress,
             stop_index: int | None = None) -> Iterator[base.Block]:
    if self._table is None:
      self._table = self._load_users(errors, progress)
    user_keys, user_columns_ = self._table
    for path, first_line, index, _, parsed in self.parsed_batches(
        errors, progress, stop_index):
      keys = parsed.ints[KEY]
      pos = np.minimum(np.searchsorted(user_keys, keys),
                       max(len(user_keys) - 1, 0))
      joined = (user_keys[pos] == keys) if len(user_keys) else np.zeros(
          len(keys), bool)
      rows = pos[joined]
      click, conversion = _labels(parsed.ints)
      block_ids = {**{k: parsed.ints[k][joined] for k in self.categorical[9:]},
                   **{k: user_columns_[k][rows] for k in self.categorical[:9]}}
      values = {**{k: parsed.floats[k][joined] for k in self.numerical[23:]},
                **{k: user_columns_[k][rows] for k in self.numerical[:23]}}
      replaced = {**{k: v[joined] for k, v in parsed.replaced.items()},
                  **{k: user_columns_[REPLACED + k][rows]
                     for k in self.numerical[:23]}}
      positions = parsed.positions
      yield base.Block(
          path=path, index=index + positions[joined],
          lines=first_line + positions[joined], ids=block_ids, lists={},
          values=values, click=click[joined], conversion=conversion[joined],
          replaced=replaced, keys={KEY: keys[joined]},
          skipped=[(index + i, kind) for i, kind in parsed.skipped],
          unjoined=index + positions[~joined], blank=len(parsed.blank))


def _find(input_path: str) -> tuple[str, str]:
  """(folder, country) of the raw files named by `--input`."""
  if not os.path.exists(input_path):
    raise FileNotFoundError(f"--input {input_path} does not exist")
  if os.path.isdir(input_path):
    folder = input_path
    found = sorted({re.sub(r"_(user|item)_(train|test)\.csv$", "",
                           os.path.basename(p))
                    for p in glob.glob(os.path.join(folder, "*_item_train.csv"))})
    if len(found) != 1:
      raise FileNotFoundError(
          f"{folder} holds {'no' if not found else len(found)} AliExpress "
          f"countries {found or ''}: expected one set of "
          "{cc}_user_train.csv + {cc}_item_train.csv (cc in "
          f"{COUNTRIES}); pass one of its files as --input to pick a country")
    return folder, found[0]
  folder = os.path.dirname(os.path.abspath(input_path))
  match = re.match(r"(.+)_(user|item)_(train|test)\.csv$",
                   os.path.basename(input_path))
  if not match:
    raise FileNotFoundError(f"--input {input_path}: expected a folder or a "
                            "file named {cc}_{user|item}_{train|test}.csv")
  return folder, match.group(1)


def sources(input_path: str) -> dict[str, base.Source]:
  """split -> joined item source (test only when both its files exist)."""
  folder, country = _find(input_path)
  return base.joined_sources(
      f"AliExpress {country}",
      {split: (os.path.join(folder, f"{country}_item_{split}.csv"),
               os.path.join(folder, f"{country}_user_{split}.csv"))
       for split in ("train", "test")}, ItemSource)
