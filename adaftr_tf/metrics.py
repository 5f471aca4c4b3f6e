"""Exact evaluation metrics on NumPy arrays: AUC, GAUC, log loss, calibration.

Keras's streaming AUC in `tasks.py` is an approximation for progress bars; final
reports use these exact, tie-aware versions. Calibration: predicted/observed
with the observed rate's standard error, ECE and its reliability bins
(equal-mass; `reliability_bins` says why), and calibration by segment.
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


def quantile_strata(values, bins: int) -> np.ndarray:
  """`[n]` int stratum in [0, bins) of each value: its quantile bin."""
  values = np.asarray(values, dtype=np.float64).reshape(-1)
  edges = np.quantile(values, np.linspace(0.0, 1.0, bins + 1))
  return np.clip(np.searchsorted(edges, values, side="right") - 1, 0,
                 bins - 1)


def stratified_auc(labels, scores, strata) -> float:
  """The AUC within each stratum, averaged with weights = the stratum's rows;
  strata with one class only are left out (NaN if every one is).

  Args:
    labels: `[n]` 0/1.
    scores: `[n]` scores.
    strata: `[n]` any hashable stratum ids (e.g. `quantile_strata`).
  """
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  strata = np.asarray(strata).reshape(-1)
  if not labels.shape == scores.shape == strata.shape:
    raise ValueError(f"labels {labels.shape}, scores {scores.shape} and "
                     f"strata {strata.shape} differ")
  values, weights = [], []
  for stratum in np.unique(strata):
    rows = strata == stratum
    value = auc(labels[rows], scores[rows])
    if not np.isnan(value):
      values.append(value)
      weights.append(int(rows.sum()))
  return float(np.average(values, weights=weights)) if values else float("nan")


def log_loss(labels, probs) -> float:
  """Mean binary cross-entropy of probabilities `[n]` (clipped to [eps, 1-eps])."""
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), _EPS, 1 - _EPS)
  if len(labels) == 0:
    return float("nan")
  return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


RELIABILITY_BINS = 10


def reliability_bins(labels, probs,
                     num_bins: int = RELIABILITY_BINS) -> list[dict]:
  """The reliability diagram's bins: equal-mass bins of the predicted
  probability, in increasing order of it.

  Equal mass (each bin holds n / num_bins rows, ties split in a stable
  order), not equal width: CTR/CVR probabilities with rare positives crowd
  near 0, where equal-width bins over [0, 1] put almost every row into the
  first bin (its ECE is then only the overall bias) and leave the upper bins
  with a handful of rows whose observed rate is noise. Equal-mass bins
  follow the scores and give every point the same precision.

  Args:
    labels: `[n]` 0/1. probs: `[n]` predicted probabilities.
    num_bins: bins (fewer when n < num_bins; none when n = 0).

  Returns:
    `[min(num_bins, n)]` dicts (JSON-serialisable): `count` rows, their
    `mean_pred` and `observed` rate; the counts sum to n.
  """
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  probs = np.asarray(probs, dtype=np.float64).reshape(-1)
  if len(labels) == 0:
    return []
  order = np.argsort(probs, kind="mergesort")
  return [{"count": int(len(chunk)), "mean_pred": float(probs[chunk].mean()),
           "observed": float(labels[chunk].mean())}
          for chunk in np.array_split(order, min(num_bins, len(order)))]


def _ece(bins: list[dict]) -> float:
  """sum_b (n_b / n) |mean_pred_b - observed_b| of `reliability_bins`."""
  total = sum(b["count"] for b in bins)
  if total == 0:
    return float("nan")
  return float(sum(b["count"] * abs(b["mean_pred"] - b["observed"])
                   for b in bins) / total)


def expected_calibration_error(labels, probs,
                               num_bins: int = RELIABILITY_BINS) -> float:
  """ECE over the equal-mass bins of `reliability_bins` (NaN when empty):
  sum_b (n_b / n) |mean(p in b) - mean(y in b)|."""
  return _ece(reliability_bins(labels, probs, num_bins))


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


def binary_report(labels, probs, prefix: str) -> dict:
  """AUC, log loss, ECE, predicted/observed ratio, the observed rate with its
  standard error, and that error carried to the ratio
  (`ratio * se / rate`: the precision to which the ratio is meaningful),
  under `{prefix}_*` keys; `{prefix}_reliability` is the list of the ECE's
  bins (`reliability_bins`: count, mean_pred, observed), from which a
  reliability diagram is drawn."""
  ratio = predicted_observed_ratio(labels, probs)
  rate, se = observed_rate(labels)
  bins = reliability_bins(labels, probs)
  return {f"{prefix}_auc": auc(labels, probs),
          f"{prefix}_logloss": log_loss(labels, probs),
          f"{prefix}_ece": _ece(bins),
          f"{prefix}_reliability": bins,
          f"{prefix}_pred_obs_ratio": ratio,
          f"{prefix}_observed_rate": rate,
          f"{prefix}_observed_rate_se": se,
          f"{prefix}_pred_obs_ratio_se": (ratio * se / rate if rate > 0
                                          else float("nan")),
          f"{prefix}_count": int(len(np.asarray(labels).reshape(-1)))}


def _group_index(groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(distinct values `[g]`, each row's group `[n]`, rows per group `[g]`)
  of the group keys `[n]` (ids or strings)."""
  values, inverse, counts = np.unique(np.asarray(groups).reshape(-1),
                                      return_inverse=True, return_counts=True)
  return values, inverse.reshape(-1), counts


def group_auc(labels, scores, groups, prefix: str) -> dict[str, float]:
  """GAUC: the AUC of each group (e.g. a user), averaged over the groups.

  Groups whose rows hold one class only have no AUC: they are left out and
  counted. Two weightings of the per-group AUCs:
    `{prefix}_gauc`: by the group's rows (impressions; for the funnel's CVR,
      measured on clicked rows, its clicks) -- the usual GAUC;
    `{prefix}_gauc_pos_weighted`: by the group's positives (clicks for CTR,
      conversions for CVR and CTCVR), which favours the active groups.
  Also `{prefix}_gauc_groups` (groups averaged), `{prefix}_gauc_excluded`
  (single-class groups left out) and `{prefix}_gauc_row_share` (the share of
  the rows in the groups averaged). NaN GAUCs when no group has both
  classes. Each group's AUC is `auc`, so GAUC is unchanged by any strictly
  increasing map of the scores (calibration).

  Args:
    labels: `[n]` 0/1. scores: `[n]` any monotone score.
    groups: `[n]` group keys (int ids or strings).
    prefix: the task name.
  """
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  _, inverse, rows = _group_index(groups)
  if inverse.shape != labels.shape:
    raise ValueError(f"groups {inverse.shape} and labels {labels.shape} "
                     "differ")
  positives = np.bincount(inverse, weights=labels > 0.5,
                          minlength=len(rows))
  mixed = (positives > 0) & (positives < rows)
  kept = np.flatnonzero(mixed[inverse])
  kept = kept[np.argsort(inverse[kept], kind="mergesort")]
  starts = np.flatnonzero(np.diff(inverse[kept])) + 1
  aucs = np.array([auc(labels[i], scores[i]) for i in np.split(kept, starts)]
                  if len(kept) else [])
  mean = lambda weights: (float(np.average(aucs, weights=weights))
                          if len(aucs) else float("nan"))
  return {f"{prefix}_gauc": mean(rows[mixed]),
          f"{prefix}_gauc_pos_weighted": mean(positives[mixed]),
          f"{prefix}_gauc_groups": int(mixed.sum()),
          f"{prefix}_gauc_excluded": int((~mixed).sum()),
          f"{prefix}_gauc_row_share": (float(len(kept) / len(labels))
                                       if len(labels) else float("nan"))}


def _json_value(value):
  """A group key as JSON: an int id as int, bytes decoded, else str."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode("utf-8", "replace")
  if isinstance(value, (int, np.integer)):
    return int(value)
  return str(value)


def _finite(value: float) -> float | None:
  """`value`, or None (JSON null) when it is NaN or infinite."""
  return float(value) if np.isfinite(value) else None


def segment_calibration(labels, probs, segments,
                        top_k: int = 5) -> list[dict]:
  """Calibration on the `top_k` most frequent values of a categorical field.

  Args:
    labels: `[n]` 0/1. probs: `[n]` predicted probabilities.
    segments: `[n]` the field's value per row.
    top_k: segments reported, most frequent first (ties: the smaller value).

  Returns:
    up to `top_k` JSON-serialisable dicts: the segment's `value`, `count`,
    `mean_pred`, `observed` rate and its standard error `observed_se`, and
    `pred_obs_ratio` (None where undefined: a segment without positives).
  """
  labels = np.asarray(labels, dtype=np.float64).reshape(-1)
  probs = np.asarray(probs, dtype=np.float64).reshape(-1)
  values, inverse, counts = _group_index(segments)
  result = []
  for index in np.argsort(-counts, kind="mergesort")[:top_k]:
    rows = inverse == index
    rate, se = observed_rate(labels[rows])
    result.append({"value": _json_value(values[index]),
                   "count": int(counts[index]),
                   "mean_pred": float(probs[rows].mean()),
                   "observed": rate, "observed_se": se,
                   "pred_obs_ratio": _finite(
                       predicted_observed_ratio(labels[rows], probs[rows]))})
  return result


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
