"""Shared types of the dataset readers: parsed blocks, bad rows, sources.

Every layout module turns its files into a stream of `Block`s: numpy columns
of consecutive good rows of one file, plus what was skipped or could not be
joined. Row identity is `(source, index)`: `index` counts the data lines of a
split's files in order (header excluded, bad rows included), which is what
the validation split is carved by; `lines` are the line numbers in the file
(header included, 1-based) used in every message.
"""

from __future__ import annotations

import abc
import dataclasses
import glob
import os
import re
from typing import Iterator

import numpy as np

from adaftr_tf import choices
from adaftr_tf import features as F
from pipelines.data.records import RaggedColumn

# Kinds of bad rows (report keys).
WRONG_COLUMNS = "wrong_column_count"
NON_NUMERIC = "non_numeric_value"
BAD_LABEL = "unknown_label_value"
BAD_TOKEN = "malformed_token"
DUPLICATE_KEY = "duplicate_join_key"
REPEATED_FIELD = "repeated_single_valued_field"
BAD_ENCODING = "not_utf8"
NON_FINITE = "non_finite_value"  # NaN/Inf numerical value, --non_finite=error
BAD_ROW_KINDS = (WRONG_COLUMNS, NON_NUMERIC, BAD_LABEL, BAD_TOKEN,
                 DUPLICATE_KEY, REPEATED_FIELD, BAD_ENCODING, NON_FINITE)


class BadRowError(ValueError):
  """A malformed input row, naming its file, line and column."""

  def __init__(self, path: str, line: int, kind: str, detail: str):
    self.path, self.line, self.kind, self.detail = path, line, kind, detail
    super().__init__(f"{path}:{line}: {kind.replace('_', ' ')}: {detail} "
                     "(line numbers count the header; rerun with "
                     "--skip_bad_rows to skip and count such rows)")


class BadRows:
  """The bad-row policy: raise at the first one, or record it and go on.

  Args:
    skip: record bad rows instead of raising `BadRowError`.
    max_examples: how many `path:line: detail` examples the report keeps.
    non_finite: a NaN or +-Inf numerical value (`choices.NonFinitePolicy`):
      `error` makes its row a bad row of kind NON_FINITE (raised, or skipped
      and counted with `skip`); `replace` keeps the row with the value
      replaced by the schema default of a numerical feature (counted per
      split and field in the data report).
  """

  def __init__(self, skip: bool, max_examples: int = 10,
               non_finite: str = "error"):
    choices.check("--non_finite", non_finite, choices.NonFinitePolicy)
    self.non_finite = non_finite
    self.skip = skip
    self.max_examples = max_examples
    self.examples: list[str] = []
    self._seen: set[tuple[str, int]] = set()

  def report(self, path: str, line: int, kind: str, detail: str) -> None:
    """Raises BadRowError, or (skipping) keeps an example message (once per
    row, however many passes read it)."""
    if not self.skip:
      raise BadRowError(path, line, kind, detail)
    if len(self.examples) < self.max_examples and (path, line) not in self._seen:
      self._seen.add((path, line))
      self.examples.append(f"{path}:{line}: {kind}: {detail}")


@dataclasses.dataclass
class Block:
  """Consecutive rows of one file, parsed.

  Attributes:
    path: the file the rows come from.
    index: [n] int64 data-row ordinals of the good rows in their source.
    lines: [n] int64 line numbers of the good rows.
    ids: single-valued categorical field -> [n] int64 raw ids.
    lists: list-valued categorical field -> RaggedColumn of n rows.
    values: numerical field -> [n] float64.
    keys: row key -> [n] int64 (`Source.keys`: written beside the
      features, e.g. AliExpress's search session; never a model input).
    click, conversion: [n] int64 0/1 labels of the first and second task
      (`Source.label_names` names them in the records: click and conversion =
      click and purchase for the CTR/CVR layouts).
    skipped: (index, kind) of each bad row skipped in this block.
    replaced: numerical field -> [n] bool, the good rows whose non-finite
      value was replaced by the default (`--non_finite=replace`).
    unjoined: [k] int64 ordinals of rows without a join partner.
    blank: blank lines met (not rows; counted in the report).
  """

  path: str
  index: np.ndarray
  lines: np.ndarray
  ids: dict[str, np.ndarray]
  lists: dict[str, RaggedColumn]
  values: dict[str, np.ndarray]
  click: np.ndarray
  conversion: np.ndarray
  skipped: list[tuple[int, str]] = dataclasses.field(default_factory=list)
  replaced: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  unjoined: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(0, np.int64))
  blank: int = 0
  keys: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.index)

  def select(self, keep: np.ndarray) -> "Block":
    """The good rows where `keep` ([n] bool) holds; skipped/unjoined kept."""
    return dataclasses.replace(
        self, index=self.index[keep], lines=self.lines[keep],
        ids={k: v[keep] for k, v in self.ids.items()},
        lists={k: take(v, keep) for k, v in self.lists.items()},
        values={k: v[keep] for k, v in self.values.items()},
        keys={k: v[keep] for k, v in self.keys.items()},
        replaced={k: v[keep] for k, v in self.replaced.items()},
        click=self.click[keep], conversion=self.conversion[keep])


def take(column: RaggedColumn, keep: np.ndarray) -> RaggedColumn:
  """Rows of a RaggedColumn where `keep` ([rows] bool) holds, in order."""
  starts, stops = column.row_splits[:-1][keep], column.row_splits[1:][keep]
  lengths = stops - starts
  mask = np.repeat(keep, column.lengths)
  return RaggedColumn.from_lengths(column.values[mask], lengths)


def concat(columns: list[RaggedColumn]) -> RaggedColumn:
  """Row-wise concatenation of RaggedColumns."""
  lengths = np.concatenate([c.lengths for c in columns])
  return RaggedColumn.from_lengths(
      np.concatenate([np.asarray(c.values, np.int64) for c in columns]),
      lengths)


def joined_sources(label: str, files_by_split: dict[str, tuple[str, ...]],
                   make) -> dict[str, "Source"]:
  """split -> `make(*files)` for each split whose files all exist.

  The train files are required: FileNotFoundError naming the missing ones
  (`label` says which layout); a split with a missing file is left out.
  """
  result = {}
  for split, files in files_by_split.items():
    missing = [p for p in files if not os.path.isfile(p)]
    if missing and split == "train":
      raise FileNotFoundError(f"{label} train files missing: {missing}")
    if not missing:
      result[split] = make(*files)
  return result


class Source(abc.ABC):
  """The files of one split of one layout, read as a stream of blocks.

  Subclasses set `paths` (the row files, whose data lines are counted) and
  implement `blocks`; `categorical`/`numerical` list the fields in schema
  order (`categorical` is None when the fields are discovered from the data).
  `label_names` are the record names of the blocks' first and second label,
  `label_relation` how they relate (`F.FUNNEL`: the second implies the first,
  so a conversion without a click is an anomaly; `F.INDEPENDENT`: two
  unrelated binary tasks); both go into the schema, and so do `keys`, the
  row keys the blocks carry (int64 columns that group rows for evaluation,
  e.g. a search session; written to the records, never model inputs).
  """

  paths: list[str]
  categorical: tuple[str, ...] | None = None
  numerical: tuple[str, ...] = ()
  multivalent: frozenset[str] = frozenset()
  label_names: tuple[str, str] = F.LABEL_KEYS
  label_relation: str = F.FUNNEL
  keys: tuple[str, ...] = ()

  @abc.abstractmethod
  def count_rows(self) -> int:
    """Data lines of `paths` (blank lines included, headers excluded)."""

  @abc.abstractmethod
  def blocks(self, errors: BadRows, progress, stop_index: int | None = None
             ) -> Iterator[Block]:
    """Yields the parsed blocks; may stop once `index >= stop_index`."""

  @staticmethod
  def field_order(name: str):
    """Sort key of discovered field names (schema order)."""
    return name

  @property
  def total_bytes(self) -> int:
    return sum(os.path.getsize(p) for p in self.paths)


def feature_name(column: str) -> str:
  """A schema feature name for a raw column or field id (a valid identifier,
  since serving signatures take one argument per feature): `101` -> `f101`."""
  name = re.sub(r"\W", "_", column.strip())
  return name if name.isidentifier() else "f" + name


def find_files(input_path: str, patterns: dict[str, tuple[str, ...]],
               layout: str) -> dict[str, list[str]]:
  """Files of each split: `input_path` is one train file or a folder.

  Args:
    input_path: a file (the train split, nothing else) or a folder searched
      with `patterns`.
    patterns: split -> glob patterns relative to the folder; the first
      pattern that matches wins.
    layout: name used in errors.

  Returns:
    split -> sorted paths; `train` is always present.

  Raises:
    FileNotFoundError: naming the path and the expected file names.
  """
  if not os.path.exists(input_path):
    raise FileNotFoundError(f"--input {input_path} does not exist")
  if not os.path.isdir(input_path):
    return {"train": [input_path]}
  found = {}
  for split, globs in patterns.items():
    for pattern in globs:
      paths = sorted(glob.glob(os.path.join(input_path, pattern)))
      if paths:
        found[split] = paths
        break
  if "train" not in found:
    raise FileNotFoundError(
        f"no {layout} train file in {input_path}: expected a file matching "
        f"one of {', '.join(patterns['train'])} (or pass the file itself)")
  return found
