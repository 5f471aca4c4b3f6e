"""Post-hoc calibration of each task's logit, fitted on the validation split.

A calibrator maps a task's logit z to a calibrated logit z' by a strictly
increasing piecewise-linear function (`Curve`): knots (x_k, t_k) with linear
interpolation between them and fixed slopes beyond the first and last knot.
Strictly increasing, so the ranking (AUC, GAUC) of every task is unchanged.
  * `platt`: z' = a z + b (two knots on the line, its slope beyond them),
    fitted by Newton's method on the log loss with Platt's target smoothing;
  * `isotonic`: the validation rows sorted by z cut into equal-mass bins
    (about MIN_POSITIVES_PER_BIN positives each, at most MAX_BINS), each
    bin's smoothed positive rate made non-decreasing by pool-adjacent-
    violators, the knots at (mean z of the bin, logit of its rate), nudged
    to strictly increasing; beyond the outermost bins' mean logits the
    slope of a Platt fit on the same rows (a flat tail would squash the
    top-scored rows, where a rare label's positives concentrate, onto the
    last bin's mean rate); finally the whole curve is shifted in logit space
    so that its mean probability on the fitting rows equals their positive
    rate (a knot at a bin's mean logit carries the bin's mean rate, which
    by convexity sits above the probability at the mean logit, so the
    unshifted curve over-predicts a rare label);
  * `none`: the identity.
Which rows fit each task: the funnel's CTR and CTCVR on every impression,
its CVR on clicked impressions only; independent tasks each on every row.
The CTCVR is calibrated on its own logit, not formed as the product of the
calibrated CTR and CVR: the product of two separately calibrated
probabilities is not a monotone function of the model's CTCVR, so it would
change the CTCVR ranking (AUC); the served ctcvr is therefore no longer
exactly ctr × cvr (both are calibrated estimates of the same rate). `fit(collected, method, objective)` returns a
`Calibration` (JSON in the model dir, `calibration.json`); `apply_numpy`
and the Keras layer (layers/calibration.py) compute the same function.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Mapping

import numpy as np

from adaftr_tf import choices
from adaftr_tf import features as F
from adaftr_tf import objective as objective_lib

METHODS = choices.options(choices.CalibrationMethod)
CALIBRATION_FILE = "calibration.json"
MAX_BINS = 50
MIN_POSITIVES_PER_BIN = 20
MIN_STEP = 1e-4         # isotonic, the smallest rise between knots
LOGIT_CLIP = 30.0


@dataclasses.dataclass(frozen=True)
class Curve:
  """A strictly increasing piecewise-linear map of logits.

  Attributes:
    x: knot logits `[K]`, strictly increasing, K >= 2.
    t: calibrated logits at the knots `[K]`, strictly increasing.
    low_slope, high_slope: slopes (> 0) below x[0] and above x[-1].
  """

  x: tuple[float, ...]
  t: tuple[float, ...]
  low_slope: float
  high_slope: float

  def __post_init__(self):
    x, t = np.asarray(self.x), np.asarray(self.t)
    if len(x) < 2 or len(x) != len(t):
      raise ValueError(f"a calibration curve needs >= 2 knots of (x, t), got "
                       f"{len(x)} and {len(t)}")
    if not (np.all(np.diff(x) > 0) and np.all(np.diff(t) > 0)
            and self.low_slope > 0 and self.high_slope > 0):
      raise ValueError("a calibration curve must be strictly increasing")

  @classmethod
  def affine(cls, a: float, b: float) -> "Curve":
    """z' = a z + b (a > 0)."""
    return cls((0.0, 1.0), (b, a + b), a, a)


IDENTITY = Curve.affine(1.0, 0.0)


def apply_numpy(curve: Curve, z: np.ndarray) -> np.ndarray:
  """The calibrated logits `[n]` (float64) of logits z `[n]`."""
  x, t = np.asarray(curve.x), np.asarray(curve.t)
  z = np.asarray(z, np.float64)
  inside = np.interp(z, x, t)
  below = t[0] + (z - x[0]) * curve.low_slope
  above = t[-1] + (z - x[-1]) * curve.high_slope
  return np.where(z < x[0], below, np.where(z > x[-1], above, inside))


def _sigmoid(z):
  return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))  # no overflow


def fit_platt(z: np.ndarray, y: np.ndarray, iterations: int = 100) -> Curve:
  """Platt scaling: (a, b) minimising the log loss of sigmoid(a z + b) on
  Platt's smoothed targets ((n+ + 1)/(n+ + 2) and 1/(n- + 2)); a > 0."""
  z = np.clip(np.asarray(z, np.float64), -LOGIT_CLIP, LOGIT_CLIP)
  y = np.asarray(y, np.float64)
  positives, negatives = y.sum(), len(y) - y.sum()
  target = np.where(y > 0.5, (positives + 1) / (positives + 2),
                    1 / (negatives + 2))
  a, b = 1.0, 0.0
  for _ in range(iterations):
    p = _sigmoid(a * z + b)
    w = np.maximum(p * (1 - p), 1e-12)
    grad = np.array([np.sum((p - target) * z), np.sum(p - target)])
    hess = np.array([[np.sum(w * z * z), np.sum(w * z)],
                     [np.sum(w * z), np.sum(w)]]) + 1e-9 * np.eye(2)
    step = np.linalg.solve(hess, grad)
    a, b = a - step[0], b - step[1]
    if np.max(np.abs(step)) < 1e-10:
      break
  return Curve.affine(max(a, 1e-3), b)


def _pool_adjacent_violators(values: np.ndarray,
                             weights: np.ndarray) -> np.ndarray:
  """The weighted least-squares non-decreasing fit `[k]` of values `[k]`."""
  blocks = []   # [mean, weight, length]
  for v, w in zip(values, weights):
    blocks.append([v, w, 1])
    while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
      v2, w2, n2 = blocks.pop()
      v1, w1, n1 = blocks.pop()
      blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
  return np.concatenate([np.full(n, v) for v, _, n in blocks])


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> Curve:
  """The isotonic curve of the module docstring; falls back to Platt when
  the rows cannot make two bins."""
  z = np.clip(np.asarray(z, np.float64), -LOGIT_CLIP, LOGIT_CLIP)
  y = np.asarray(y, np.float64)
  order = np.argsort(z, kind="stable")
  z, y = z[order], y[order]
  positives = min(y.sum(), len(y) - y.sum())   # the rarer class sets bins
  bins = int(min(MAX_BINS, positives // MIN_POSITIVES_PER_BIN))
  if bins < 2:
    return fit_platt(z, y)
  edges = np.linspace(0, len(z), bins + 1).astype(np.int64)
  x, rate, weight = [], [], []
  for start, end in zip(edges[:-1], edges[1:]):
    x.append(z[start:end].mean())
    rate.append((y[start:end].sum() + 0.5) / (end - start + 1.0))
    weight.append(end - start)
  rate = _pool_adjacent_violators(np.array(rate), np.array(weight, float))
  t = np.log(rate) - np.log1p(-rate)
  x = np.array(x)
  keep = np.concatenate([[True], np.diff(x) > 1e-9])   # tied bin means
  x, t = x[keep], t[keep]
  if len(x) < 2:
    return fit_platt(z, y)
  for k in range(1, len(t)):   # strictly increasing: ranks are preserved
    t[k] = max(t[k], t[k - 1] + MIN_STEP)
  tail = fit_platt(z, y).low_slope
  curve = Curve(tuple(x), tuple(t), tail, tail)
  shift = _mean_matching_shift(apply_numpy(curve, z), y.mean())
  return Curve(tuple(x), tuple(t + shift), tail, tail)


def _mean_matching_shift(logits: np.ndarray, rate: float) -> float:
  """The shift d with mean(sigmoid(logits + d)) = rate (bisection)."""
  low, high = -LOGIT_CLIP, LOGIT_CLIP
  for _ in range(100):
    mid = 0.5 * (low + high)
    if _sigmoid(logits + mid).mean() < rate:
      low = mid
    else:
      high = mid
  return 0.5 * (low + high)


@dataclasses.dataclass(frozen=True)
class Calibration:
  """The fitted calibrators of a model.

  Attributes:
    method: one of METHODS.
    curves: model logit key (F.CTR_LOGIT, F.CVR_LOGIT) -> its Curve.
  """

  method: str = "none"
  curves: Mapping[str, Curve] = dataclasses.field(default_factory=dict)

  def curve(self, logit_key: str) -> Curve:
    return self.curves.get(logit_key, IDENTITY)

  def to_json(self) -> str:
    return json.dumps({"method": self.method, "curves": {
        k: dataclasses.asdict(c) for k, c in self.curves.items()}}, indent=1)

  @classmethod
  def from_json(cls, text: str) -> "Calibration":
    data = json.loads(text)
    return cls(data["method"], {k: Curve(tuple(c["x"]), tuple(c["t"]),
                                         c["low_slope"], c["high_slope"])
                                for k, c in data["curves"].items()})


# The logit each probability output comes from.
LOGIT_OF = {F.CTR: F.CTR_LOGIT, F.CVR: F.CVR_LOGIT, F.CTCVR: F.CTCVR_LOGIT}


def _logit(p: np.ndarray) -> np.ndarray:
  p = np.clip(np.asarray(p, np.float64), 1e-15, 1 - 1e-15)
  return np.log(p) - np.log1p(-p)


def fit(collected: Mapping[str, np.ndarray], method: str,
        objective: objective_lib.Objective = objective_lib.FUNNEL_OBJECTIVE
        ) -> Calibration:
  """Fits `method` per task on collected validation arrays (evaluation.collect:
  the probabilities and the labels) with the rows of the module docstring."""
  choices.check("train.calibration", method, choices.CalibrationMethod)
  if method == "none":
    return Calibration()
  fitter = fit_platt if method == "platt" else fit_isotonic
  curves = {}
  for task in objective.reported:
    rows = (collected[F.CLICK] > 0.5 if task.clicked_only
            else slice(None))
    curves[LOGIT_OF[task.output]] = fitter(
        _logit(collected[task.output][rows]), collected[task.label][rows])
  return Calibration(method, curves)


def calibrate_collected(collected: Mapping[str, np.ndarray],
                        calibration: Calibration) -> dict[str, np.ndarray]:
  """A copy of collected arrays with every probability calibrated: the same
  function as the SavedModel's calibrated outputs."""
  out = dict(collected)
  for output, key in LOGIT_OF.items():
    if output in collected:
      out[output] = _sigmoid(apply_numpy(calibration.curve(key),
                                         _logit(collected[output])))
  return out

