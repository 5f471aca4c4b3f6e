"""Splits: validation carved from the END of the train files, never from test.

Rows are identified by their data-line ordinal in the train files (bad and
dropped rows included), counted before anything is read, so the boundary is
known in the statistics pass and the same in the write pass.
"""

from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST = "train", "valid", "test"


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
  """Output split -> [n] bool mask of the rows of a block of `source`."""
  if source != TRAIN:
    return {source: np.ones(len(index), bool)}
  in_train = index < boundary
  return {TRAIN: in_train, VALID: ~in_train}
