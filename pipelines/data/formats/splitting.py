"""Splits: which output split (train/valid/test) each input row goes to.

A `Splitter` routes a row by its source split and its row index alone (the
data-line ordinal in that source's files: header excluded, bad and dropped
rows included, counted before anything is parsed), so the statistics pass
(train rows only) and the write pass route every row the same way. A layout
declares its rule as a module attribute `SPLITTER` (a Splitter class):

  * `FileOrder` (the default): train and test are the train and test files;
    valid is carved from the END of the train files, never from test;
  * `SeededRows`: the layout's files are one pool of rows (no split of their
    own), routed to train/valid/test by a hash of (seed, row index), so the
    split is reproducible and independent of how the rows are batched.
"""

from __future__ import annotations

import abc

import numpy as np

TRAIN, VALID, TEST = "train", "valid", "test"
DEFAULT_SEED = 42

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 / golden ratio


def valid_lines(train_lines: int, fraction: float) -> int:
  """Data lines at the end of the train files that become the valid split.

  Raises:
    ValueError: a fraction outside [0, 1).
  """
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"--valid_fraction={fraction} must lie in [0, 1)")
  if fraction == 0.0 or train_lines < 2:
    return 0
  return int(min(max(round(fraction * train_lines), 1), train_lines - 1))


def route(source: str, index: np.ndarray, boundary: int) -> dict[str, np.ndarray]:
  """Output split -> [n] bool mask of the rows of a block of `source`, with
  valid = the train rows at `index >= boundary` (`FileOrder`'s rule)."""
  if source != TRAIN:
    return {source: np.ones(len(index), bool)}
  in_train = index < boundary
  return {TRAIN: in_train, VALID: ~in_train}


class Splitter(abc.ABC):
  """Routes the rows of each source split to output splits.

  Attributes:
    stop_index: pass 1 may stop reading the train source at this row index
      (no train row lies beyond it); None reads it all.
    seeded: whether `--split_seed` applies.
  """

  stop_index: int | None = None
  seeded = False

  @classmethod
  @abc.abstractmethod
  def create(cls, line_counts: dict[str, int], valid_fraction: float | None,
             seed: int | None) -> "Splitter":
    """The splitter of one conversion.

    Args:
      line_counts: source split -> data lines (`Source.count_rows`).
      valid_fraction: share of the rows for valid; None: the rule's default.
      seed: `--split_seed`; None: `DEFAULT_SEED` (seeded rules only: the
        converter refuses the flag for the others).

    Raises:
      ValueError: an option that does not fit the rule or the sources.
    """

  @abc.abstractmethod
  def route(self, source: str, index: np.ndarray) -> dict[str, np.ndarray]:
    """Output split -> [n] bool mask over `index` ([n] int64 row indices of
    `source`); the masks partition the rows."""

  @abc.abstractmethod
  def outputs(self, source: str) -> tuple[str, ...]:
    """The output splits that rows of `source` can reach (row accounting)."""

  @abc.abstractmethod
  def describe(self) -> dict:
    """The rule and its parameters, for the data report."""

  def splits(self, sources) -> tuple[str, ...]:
    """The output splits written: train, valid, then those of `sources`."""
    reached = (s for source in sources for s in self.outputs(source))
    return tuple(dict.fromkeys((TRAIN, VALID, *reached)))

  def train_rows(self, index: np.ndarray) -> np.ndarray:
    """[n] bool: the rows of the train source routed to train (pass 1)."""
    return self.route(TRAIN, index)[TRAIN]


class FileOrder(Splitter):
  """valid = the last `valid_fraction` (default 0.1; 0 when the input has a
  valid split of its own) of the train files' data lines; every other source
  is its own split.

  Args:
    train_lines: data lines of the train files.
    valid_fraction: the share carved for valid.
  """

  DEFAULT_VALID_FRACTION = 0.1

  def __init__(self, train_lines: int, valid_fraction: float):
    self.valid_fraction = valid_fraction
    self.train_lines = train_lines
    self.boundary = train_lines - valid_lines(train_lines, valid_fraction)
    self.stop_index = self.boundary

  @classmethod
  def create(cls, line_counts, valid_fraction, seed) -> "FileOrder":
    del seed  # file order has none (the converter refuses --split_seed)
    if valid_fraction is None:  # none carved when the input has a valid split
      valid_fraction = (0.0 if VALID in line_counts
                        else cls.DEFAULT_VALID_FRACTION)
    return cls(line_counts[TRAIN], valid_fraction)

  def route(self, source, index):
    return route(source, index, self.boundary)

  def outputs(self, source):
    if source == TRAIN and self.boundary < self.train_lines:
      return (TRAIN, VALID)
    return (source,)

  def describe(self) -> dict:
    return {"rule": "file_order", "valid_fraction": self.valid_fraction,
            "valid_boundary_line_index": self.boundary}


def uniform(seed: int, index: np.ndarray) -> np.ndarray:
  """[n] float64 in [0, 1): a counter-based hash of (seed, row index).

  SplitMix64's finaliser applied to `mix(seed) + (index + 1) * golden`
  (mod 2**64), top 53 bits: a pure function of its arguments (no state, no
  batching effect), uniform and decorrelated across neighbouring indices.
  """
  key = _mix64(np.asarray([seed & _MASK64], np.uint64))[0]
  counter = (np.asarray(index).astype(np.uint64) + np.uint64(1)) * np.uint64(
      _GOLDEN)
  return (_mix64(counter + key) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _mix64(z: np.ndarray) -> np.ndarray:
  """SplitMix64's output function on [n] uint64 (wrapping arithmetic)."""
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


class SeededRows(Splitter):
  """One pool of rows (the train source alone) split at random by seed:
  `u = uniform(seed, index)`; test when `u < test_fraction`, valid when
  `u < test_fraction + valid_fraction`, train otherwise. So a row's split
  depends on (seed, index) alone, and changing `valid_fraction` moves rows
  between train and valid only, never into or out of test.

  Args:
    seed: the split seed.
    valid_fraction, test_fraction: the expected shares of valid and test.
  """

  DEFAULT_VALID_FRACTION = 0.2
  TEST_FRACTION = 0.2
  seeded = True

  def __init__(self, seed: int, valid_fraction: float, test_fraction: float):
    if not (0.0 <= valid_fraction and 0.0 <= test_fraction
            and valid_fraction + test_fraction < 1.0):
      raise ValueError(f"--valid_fraction={valid_fraction} with a test share "
                       f"of {test_fraction}: both must be >= 0 and leave "
                       "rows for train (sum < 1)")
    self.seed, self.valid_fraction = seed, valid_fraction
    self.test_fraction = test_fraction

  @classmethod
  def create(cls, line_counts, valid_fraction, seed) -> "SeededRows":
    if set(line_counts) != {TRAIN}:
      raise ValueError("a seeded split reads one pool of rows; got source "
                       f"splits {sorted(line_counts)}")
    return cls(DEFAULT_SEED if seed is None else seed,
               cls.DEFAULT_VALID_FRACTION if valid_fraction is None
               else valid_fraction, cls.TEST_FRACTION)

  def route(self, source, index):
    if source != TRAIN:
      raise ValueError(f"a seeded split has no {source} source")
    u = uniform(self.seed, index)
    test = u < self.test_fraction
    valid = ~test & (u < self.test_fraction + self.valid_fraction)
    return {TRAIN: ~(test | valid), VALID: valid, TEST: test}

  def outputs(self, source):
    return (TRAIN, VALID, TEST)

  def describe(self) -> dict:
    return {"rule": "seeded_rows", "seed": self.seed,
            "valid_fraction": self.valid_fraction,
            "test_fraction": self.test_fraction}
