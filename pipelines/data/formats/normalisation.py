"""Numerical fields: streaming mean/std on the train split -> normalisation."""

from __future__ import annotations

import math

import numpy as np

from adaftr_tf import features as F


class Moments:
  """Count, mean and sum of squared deviations, merged block by block (Chan
  et al.'s parallel update, float64), plus the range for the report."""

  def __init__(self):
    self.n, self.mean, self.m2 = 0, 0.0, 0.0
    self.min, self.max = math.inf, -math.inf

  def update(self, values: np.ndarray) -> None:
    if not len(values):
      return
    values = np.asarray(values, np.float64)
    n, mean = len(values), float(values.mean())
    m2 = float(np.sum((values - mean) ** 2))
    total = self.n + n
    delta = mean - self.mean
    self.mean += delta * n / total
    self.m2 += m2 + delta * delta * self.n * n / total
    self.n = total
    self.min = min(self.min, float(values.min()))
    self.max = max(self.max, float(values.max()))

  @property
  def std(self) -> float:
    return math.sqrt(self.m2 / self.n) if self.n else 0.0


def fit(name: str, moments: Moments) -> F.NumericalFeature:
  """`(x - mean) / std` from the train split; a constant field keeps std 1."""
  std = moments.std
  return F.NumericalFeature(name, mean=float(moments.mean),
                            std=std if std > 1e-12 else 1.0)
