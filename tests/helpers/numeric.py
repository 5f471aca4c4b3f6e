"""NumPy references shared by the loss and task tests."""

import numpy as np


def unit_rows(rng, n, d):
  """`n` random unit rows of dimension `d`, float32."""
  x = rng.normal(size=(n, d))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
