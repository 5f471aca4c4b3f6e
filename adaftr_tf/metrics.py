"""Exact evaluation metrics on NumPy arrays (AUC variants, log loss, calibration).

Keras's streaming AUC in `tasks.py` is an approximation for progress bars; final
reports use these exact, tie-aware versions.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def _rank(values: np.ndarray) -> np.ndarray:
  """Average ranks (1-based) with ties sharing their mean rank."""
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  ranks = np.empty(len(values), dtype=np.float64)
  boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
  starts = np.concatenate([[0], boundaries])
  ends = np.concatenate([boundaries, [len(values)]])
  for start, end in zip(starts, ends):
    ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
  return ranks


def auc(labels, scores) -> float:
  """ROC AUC (Mann-Whitney U, ties count 1/2); NaN if one class is absent.

  Args:
    labels: `[n]` 0/1.
    scores: `[n]` any monotone score (probability or logit).
  """
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  if labels.shape != scores.shape:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ")
  positives = labels > 0.5
  n_pos = int(positives.sum())
  n_neg = len(labels) - n_pos
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  ranks = _rank(scores)
  return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) /
               (n_pos * n_neg))


def log_loss(labels, probs) -> float:
  """Mean binary cross-entropy of probabilities `[n]` (clipped to [eps, 1-eps])."""
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), _EPS, 1 - _EPS)
  if len(labels) == 0:
    return float("nan")
  return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def expected_calibration_error(labels, probs, num_bins: int = 10) -> float:
  """ECE over equal-mass bins of the predicted probability.

  ECE = sum_b (n_b / n) |mean(p in b) - mean(y in b)|. Equal-mass bins, since
  CTR/CVR probabilities crowd near 0 where equal-width bins are all empty.
  """
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  probs = np.asarray(probs, dtype=np.float64).reshape(-1)
  if len(labels) == 0:
    return float("nan")
  order = np.argsort(probs, kind="mergesort")
  error = 0.0
  for chunk in np.array_split(order, min(num_bins, len(order))):
    error += len(chunk) * abs(probs[chunk].mean() - labels[chunk].mean())
  return float(error / len(labels))


def predicted_observed_ratio(labels, probs) -> float:
  """sum(p) / sum(y): 1.0 is calibrated on average; NaN without positives."""
  labels = np.asarray(labels, dtype=np.float64)
  total = labels.sum()
  return float(np.sum(probs) / total) if total > 0 else float("nan")


def observed_rate(labels) -> tuple[float, float]:
  """(rate, its binomial standard error sqrt(rate (1 - rate) / n)) of 0/1
  `labels` `[n]`; (NaN, NaN) when empty."""
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  if labels.size == 0:
    return float("nan"), float("nan")
  rate = float(labels.mean())
  return rate, float(np.sqrt(rate * (1.0 - rate) / labels.size))


def spearman(x, y) -> float:
  """Spearman rank correlation; NaN when either input is constant."""
  rx, ry = _rank(np.asarray(x, np.float64)), _rank(np.asarray(y, np.float64))
  if rx.std() == 0 or ry.std() == 0:
    return float("nan")
  return float(np.corrcoef(rx, ry)[0, 1])


def binary_report(labels, probs, prefix: str) -> dict[str, float]:
  """AUC, log loss, ECE, predicted/observed ratio, the observed rate with its
  standard error, and that error carried to the ratio
  (`ratio * se / rate`: the precision to which the ratio is meaningful),
  under `{prefix}_*` keys."""
  ratio = predicted_observed_ratio(labels, probs)
  rate, se = observed_rate(labels)
  return {f"{prefix}_auc": auc(labels, probs),
          f"{prefix}_logloss": log_loss(labels, probs),
          f"{prefix}_ece": expected_calibration_error(labels, probs),
          f"{prefix}_pred_obs_ratio": ratio,
          f"{prefix}_observed_rate": rate,
          f"{prefix}_observed_rate_se": se,
          f"{prefix}_pred_obs_ratio_se": (ratio * se / rate if rate > 0
                                          else float("nan")),
          f"{prefix}_count": int(len(np.asarray(labels).reshape(-1)))}


def distribution(values, prefix: str) -> dict[str, float]:
  """Mean, std and percentiles (5, 25, 50, 75, 95) of `values` `[n]`."""
  values = np.asarray(values, np.float64).reshape(-1)
  stats = {f"{prefix}_mean": float(values.mean()),
           f"{prefix}_std": float(values.std())}
  for q in (5, 25, 50, 75, 95):
    stats[f"{prefix}_p{q}"] = float(np.percentile(values, q))
  return stats


def at_bounds(values, low: float, high: float, prefix: str,
              tolerance: float = 0.01) -> dict[str, float]:
  """Fractions of `values` `[n]` at the bounds: within `tolerance` of the
  range (high - low) from `low` (`<prefix>_at_min`) and from `high`
  (`<prefix>_at_max`)."""
  values = np.asarray(values, np.float64).reshape(-1)
  margin = tolerance * (high - low)
  return {f"{prefix}_at_min": float(np.mean(values <= low + margin)),
          f"{prefix}_at_max": float(np.mean(values >= high - margin))}


# Two-sided 95% quantiles of Student's t by degrees of freedom (1..30).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262,
         2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
         2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
         2.048, 2.045, 2.042)


def paired_interval(differences) -> tuple[float, float, float]:
  """(mean, low, high): the mean of paired differences and its 95% t interval.

  `differences` `[n]` (one per seed); with n = 1 the interval is (nan, nan).
  """
  d = np.asarray(differences, np.float64)
  mean = float(d.mean())
  if len(d) < 2:
    return mean, float("nan"), float("nan")
  t = _T975[len(d) - 2] if len(d) - 1 <= len(_T975) else 1.96
  half = t * float(d.std(ddof=1)) / np.sqrt(len(d))
  return mean, mean - half, mean + half
