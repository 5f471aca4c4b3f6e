"""Delimited files with a fixed column layout -> numpy columns, a batch at a time.

One parser for every table-shaped layout (AliExpress CSVs raw and
preprocessed, the Ali-CCP CSV). A batch is parsed by one C-level
`np.fromstring` over its joined rows; if that fails (a non-number somewhere,
or ids beyond 2**53 that float64 would round) by per-column numpy casts of
the split cells; and only when those fail too are its rows checked one by
one, so that every bad row is found and reported in file order with its line
and column.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from adaftr_tf import features as F
from pipelines.data.formats import base

# What a non-finite value becomes with --non_finite=replace: the documented
# default of a numerical feature (its value when missing from a record).
NUMERICAL_DEFAULT = F.NumericalFeature.default

ID, VALUE, LABEL, KEY, IGNORE = "id", "value", "label", "key", "ignore"


@dataclasses.dataclass(frozen=True)
class Column:
  """One column of a table layout.

  Attributes:
    name: output key (feature name, label name or join key name).
    kind: ID (integer id), VALUE (finite float), LABEL (integer in `labels`),
      KEY (integer join key) or IGNORE (read, not checked).
    labels: the valid values of a LABEL column.
  """

  name: str
  kind: str
  labels: tuple[int, ...] = ()


@dataclasses.dataclass
class Parsed:
  """The good rows of one batch.

  Attributes:
    positions: [n] positions of the good rows within the batch.
    ints: ID/LABEL/KEY column name -> [n] int64.
    floats: VALUE column name -> [n] float64.
    skipped: (position, kind) of each bad row (skipping mode).
    blank: positions of blank lines.
    replaced: VALUE column name -> [n] bool, the good rows whose non-finite
      value became `NUMERICAL_DEFAULT` (`--non_finite=replace`).
  """

  positions: np.ndarray
  ints: dict[str, np.ndarray]
  floats: dict[str, np.ndarray]
  skipped: list[tuple[int, str]]
  blank: list[int]
  replaced: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def non_finite_detail(what: str, value) -> str:
  """The bad-row message of a NaN/Inf numerical value (`what` names it)."""
  return (f"{what} is {value!r}, not a finite number; rerun with "
          f"--non_finite=replace to use the default {NUMERICAL_DEFAULT} "
          "(counted in the data report)")


def _to_int(token: str) -> int:
  """An integer id; integral floats ("12.0") are accepted."""
  try:
    return int(token)
  except ValueError:
    value = float(token)
    if not (math.isfinite(value) and value.is_integer()):
      raise
    return int(value)


def _cast_ints(cells: np.ndarray) -> np.ndarray:
  try:
    return cells.astype(np.int64)
  except (ValueError, OverflowError):
    values = cells.astype(np.float64)  # may raise: then the rows are checked
    if not (np.isfinite(values).all() and (values == np.round(values)).all()
            and np.abs(values).max(initial=0) < 2.0**63):
      raise ValueError("non-integral id") from None
    return values.astype(np.int64)


def _row_problem(cells: list[str], columns: tuple[Column, ...],
                 replace_non_finite: bool):
  """(kind, detail) of the first bad cell of a row, or None."""
  for j, (cell, column) in enumerate(zip(cells, columns)):
    if column.kind == IGNORE:
      continue
    try:
      if column.kind == VALUE:
        if not (math.isfinite(float(cell)) or replace_non_finite):
          return base.NON_FINITE, non_finite_detail(
              f"column {j + 1} ({column.name})", cell)
        continue
      value = _to_int(cell)
    except (ValueError, OverflowError):
      what = "a number" if column.kind == VALUE else "an integer"
      return base.NON_NUMERIC, (f"column {j + 1} ({column.name}) is {cell!r}, "
                                f"expected {what}")
    if column.kind == LABEL and value not in column.labels:
      return base.BAD_LABEL, (f"column {j + 1} ({column.name}) is {cell!r}; "
                              f"valid labels: {list(column.labels)}")
    if value >= 2**63 or value < -2**63:
      return base.NON_NUMERIC, (f"column {j + 1} ({column.name}) is {cell!r}, "
                                "outside int64")
  return None


def _decode(raw: list[bytes], problems: dict) -> list[str]:
  try:
    return b"\n".join(raw).decode("utf-8").split("\n")
  except UnicodeDecodeError:
    texts = []
    for i, line in enumerate(raw):
      try:
        texts.append(line.decode("utf-8"))
      except UnicodeDecodeError as err:
        problems[i] = (base.BAD_ENCODING, f"byte {err.start + 1} is not UTF-8")
        texts.append("")
    return texts


def parse(raw: list[bytes], columns: tuple[Column, ...], path: str,
          first_line: int, errors: base.BadRows, delimiter: str = ","
          ) -> Parsed:
  """Parses one batch of lines of a table layout.

  Args:
    raw: the lines, without EOL.
    columns: the layout, one Column per field.
    path, first_line: for messages (line number of raw[0]).
    errors: the bad-row policy (raises at the first bad row unless skipping).
    delimiter: the field separator.

  Returns:
    The good rows' columns (see `Parsed`).
  """
  problems: dict[int, tuple[str, str]] = {}
  texts = _decode(raw, problems)
  blank = [i for i, t in enumerate(texts) if not t.strip() and i not in problems]
  good_texts, positions = [], []
  for i, text in enumerate(texts):
    if i in problems or not text.strip():
      continue
    count = text.count(delimiter) + 1
    if count != len(columns):
      problems[i] = (base.WRONG_COLUMNS, f"{count} columns, expected "
                     f"{len(columns)}")
      continue
    good_texts.append(text)
    positions.append(i)
  replace = errors.non_finite == "replace"
  ints, floats = _convert_numbers(_fast_numbers(good_texts, len(columns),
                                                delimiter), columns, replace)
  rows = table = None
  if ints is None:
    rows = [t.split(delimiter) for t in good_texts]
    table = np.array(rows, dtype=str).reshape(len(rows), len(columns))
    ints, floats = _convert(table, columns, replace)
  if ints is None:  # some cast failed: find the bad rows one by one
    for cells, i in zip(rows, positions):
      problem = _row_problem(cells, columns, replace)
      if problem is not None:
        problems[i] = problem
  good = np.array([i not in problems for i in positions], bool)
  for i in sorted(problems):
    errors.report(path, first_line + i, *problems[i])
  if ints is None:
    ints, floats = _convert(table[good], columns, replace)
    if ints is None:
      raise AssertionError(f"{path}:{first_line}: rows that passed the row "
                           "check failed the batch cast")
  else:
    ints = {k: v[good] for k, v in ints.items()}
    floats = {k: v[good] for k, v in floats.items()}
  replaced = {}
  if replace:  # only non-finite values are left in a float column here
    for name, values in floats.items():
      replaced[name] = ~np.isfinite(values)
      floats[name] = np.where(replaced[name], NUMERICAL_DEFAULT, values)
  return Parsed(np.asarray(positions, np.int64)[good], ints, floats,
                [(i, problems[i][0]) for i in sorted(problems)], blank,
                replaced)


def _fast_numbers(texts: list[str], width: int, delimiter: str):
  """[n, width] float64 of rows that are all numbers, else None."""
  if not texts:
    return np.zeros((0, width))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # numpy warns (not raises) on leftovers
    try:
      values = np.fromstring(delimiter.join(texts), np.float64, sep=delimiter)
    except (ValueError, DeprecationWarning):
      return None
  if values.size != len(texts) * width:
    return None
  return values.reshape(len(texts), width)


def _convert_numbers(table: np.ndarray | None, columns: tuple[Column, ...],
                     allow_non_finite: bool):
  """The columns of an all-number [n, columns] float64 table, or (None, None)
  when a check fails (ids must be integral and below 2**53 to be exact)."""
  if table is None:
    return None, None
  ints, floats = {}, {}
  for j, column in enumerate(columns):
    values = table[:, j]
    if column.kind == VALUE:
      if not (allow_non_finite or np.isfinite(values).all()):
        return None, None
      floats[column.name] = values
    elif column.kind in (ID, LABEL, KEY):
      if not (np.abs(values) < 2.0**53).all() or (values != np.round(values)
                                                   ).any():
        return None, None
      ints[column.name] = values.astype(np.int64)
      if column.kind == LABEL and not np.isin(ints[column.name],
                                              column.labels).all():
        return None, None
  return ints, floats


def _convert(table: np.ndarray, columns: tuple[Column, ...],
             allow_non_finite: bool):
  """Vectorised casts of [n, columns] strings; (None, None) if any fails."""
  int_cols = [j for j, c in enumerate(columns) if c.kind in (ID, LABEL, KEY)]
  float_cols = [j for j, c in enumerate(columns) if c.kind == VALUE]
  try:
    int_values = _cast_ints(table[:, int_cols])
    float_values = table[:, float_cols].astype(np.float64)
  except (ValueError, OverflowError):
    return None, None
  if not (allow_non_finite or np.isfinite(float_values).all()):
    return None, None
  ints = {columns[j].name: int_values[:, k] for k, j in enumerate(int_cols)}
  for j in int_cols:
    column = columns[j]
    if column.kind == LABEL and not np.isin(ints[column.name],
                                            column.labels).all():
      return None, None
  floats = {columns[j].name: float_values[:, k]
            for k, j in enumerate(float_cols)}
  return ints, floats
