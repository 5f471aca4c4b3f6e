"""Tests of adaftr_tf.metrics against independent brute-force references."""

import json
import math

import numpy as np
import pytest

from adaftr_tf import metrics as M


def brute_force_auc(labels, scores):
  """P(score_pos > score_neg) + 0.5 P(tie), counting every pair."""
  pos = [s for y, s in zip(labels, scores) if y > 0.5]
  neg = [s for y, s in zip(labels, scores) if y <= 0.5]
  total = 0.0
  for p in pos:
    for n in neg:
      total += 1.0 if p > n else 0.5 if p == n else 0.0
  return total / (len(pos) * len(neg))


def pearson(a, b):
  a = np.asarray(a, np.float64) - np.mean(a)
  b = np.asarray(b, np.float64) - np.mean(b)
  return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


# ---------------------------------------------------------------- AUC

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_brute_force_with_ties(seed):
  rng = np.random.default_rng(seed)
  n = 300
  labels = rng.integers(0, 2, n)
  # Few distinct values -> many ties within and across classes.
  scores = np.round(rng.random(n) + 0.3 * labels, 1)
  assert len(np.unique(scores)) < n // 5
  assert M.auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores),
                                                abs=1e-12)


def test_auc_hand_cases():
  assert M.auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
  assert M.auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
  assert M.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
  # One of 2x2 pairs inverted, one tied: (1 + 1 + 0.5 + 0) / 4.
  assert M.auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.05]) == pytest.approx(
      brute_force_auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.05]))
  assert M.auc([0, 1, 1], [0.3, 0.2, 0.4]) == 0.5


def test_auc_one_class_is_nan():
  assert math.isnan(M.auc([1, 1, 1], [0.1, 0.2, 0.3]))
  assert math.isnan(M.auc([0, 0], [0.1, 0.2]))
  assert math.isnan(M.auc([], []))


def test_auc_invariant_to_monotone_transform_and_shape():
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 2, 100)
  probs = rng.random(100)
  base = M.auc(labels, probs)
  assert M.auc(labels, np.log(probs / (1 - probs))) == pytest.approx(base)
  assert M.auc(labels[:, None], probs[:, None]) == pytest.approx(base)


def test_auc_shape_mismatch():
  with pytest.raises(ValueError, match="differ"):
    M.auc([0, 1, 1], [0.1, 0.2])


# ---------------------------------------------------------------- log loss

def test_stratified_auc_is_the_row_weighted_mean_of_per_stratum_aucs():
  labels = [1, 0, 0, 1, 0, 1, 1, 0, 0]
  scores = [0.9, 0.1, 0.5, 0.2, 0.8, 0.7, 0.6, 0.3, 0.3]
  strata = ["a", "a", "a", "b", "b", "b", "b", "c", "c"]  # c: one class
  # a: the positive 0.9 beats both negatives -> 1.0 (3 rows); b: positives
  # 0.2, 0.7, 0.6 against the negative 0.8 -> 0 of 3 (4 rows).
  assert M.stratified_auc(labels, scores, strata) == pytest.approx(
      (3 * 1.0 + 4 * 0.0) / 7)
  assert M.stratified_auc(labels, scores, [0] * 9) == pytest.approx(
      brute_force_auc(labels, scores))
  assert math.isnan(M.stratified_auc([1, 0], [0.3, 0.2], [0, 1]))
  with pytest.raises(ValueError, match="strata"):
    M.stratified_auc(labels, scores, strata[:-1])


def test_quantile_strata_are_equal_mass_bins_in_order():
  values = np.random.default_rng(0).random(1000)
  strata = M.quantile_strata(values, 4)
  assert sorted(np.bincount(strata)) == [250] * 4
  order = np.argsort(values)
  assert np.all(np.diff(strata[order]) >= 0)   # monotone in the value
  assert M.quantile_strata(values, 1).max() == 0


def test_log_loss_matches_formula():
  labels = np.array([1, 0, 1, 0, 1])
  probs = np.array([0.9, 0.2, 0.4, 0.6, 0.99])
  expected = -np.mean([math.log(0.9), math.log(0.8), math.log(0.4),
                       math.log(0.4), math.log(0.99)])
  assert M.log_loss(labels, probs) == pytest.approx(expected, rel=1e-12)


def test_log_loss_clipped_at_extremes():
  value = M.log_loss([1, 0], [0.0, 1.0])
  assert math.isfinite(value)
  assert value == pytest.approx(-math.log(1e-7), rel=1e-6)
  assert M.log_loss([1, 0], [1.0, 0.0]) == pytest.approx(0.0, abs=1e-6)


def test_log_loss_empty_is_nan():
  assert math.isnan(M.log_loss([], []))


# ---------------------------------------------------------------- ECE

def test_ece_zero_for_perfectly_calibrated_bins():
  # Two equal-mass bins of 10: p=0.2 with 2 positives, p=0.7 with 7.
  probs = np.array([0.2] * 10 + [0.7] * 10)
  labels = np.array([1, 1] + [0] * 8 + [1] * 7 + [0] * 3)
  perm = np.random.default_rng(0).permutation(20)
  assert M.expected_calibration_error(labels[perm], probs[perm],
                                      num_bins=2) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed():
  # Sorted probs split into 2 bins of 2:
  #   bin 1: p = (0.1, 0.3), y = (0, 1): |0.2 - 0.5| = 0.3
  #   bin 2: p = (0.6, 0.8), y = (1, 1): |0.7 - 1.0| = 0.3
  # ECE = (2 * 0.3 + 2 * 0.3) / 4 = 0.3.
  labels = [1, 1, 0, 1]
  probs = [0.8, 0.3, 0.1, 0.6]
  assert M.expected_calibration_error(labels, probs, num_bins=2) == \
      pytest.approx(0.3)
  # With one bin: |mean p - mean y| = |0.45 - 0.75| = 0.3 as well; three bins
  # of sizes (2, 1, 1): (2*0.3 + |0.6-1| + |0.8-1|) / 4 = 0.3.
  assert M.expected_calibration_error(labels, probs, num_bins=1) == \
      pytest.approx(0.3)
  assert M.expected_calibration_error(labels, probs, num_bins=3) == \
      pytest.approx((0.6 + 0.4 + 0.2) / 4)


def test_ece_more_bins_than_rows_and_empty():
  # Each row its own bin: mean |p - y|.
  assert M.expected_calibration_error([1, 0], [0.9, 0.3], num_bins=10) == \
      pytest.approx((0.1 + 0.3) / 2)
  assert math.isnan(M.expected_calibration_error([], []))


# ---------------------------------------------------------------- ratio

def test_predicted_observed_ratio():
  assert M.predicted_observed_ratio([1, 0, 1, 0], [0.5, 0.5, 0.25, 0.75]) == \
      pytest.approx(1.0)
  assert M.predicted_observed_ratio([1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]) == \
      pytest.approx(2.0)
  assert math.isnan(M.predicted_observed_ratio([0, 0], [0.1, 0.2]))


# ---------------------------------------------------------------- spearman

def test_spearman_hand_case():
  x = [1.0, 2.0, 3.0, 4.0, 5.0]
  y = [2.0, 1.0, 4.0, 3.0, 5.0]
  # d = (1, 1, 1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8.
  assert M.spearman(x, y) == pytest.approx(0.8)
  assert M.spearman(x, x[::-1]) == pytest.approx(-1.0)


def test_spearman_equals_pearson_of_average_ranks_with_ties():
  x = np.array([3.0, 1.0, 1.0, 2.0, 5.0, 5.0, 5.0])
  y = np.array([0.1, 0.4, 0.2, 0.2, 0.9, 0.3, 0.8])
  rank_x = np.array([4.0, 1.5, 1.5, 3.0, 6.0, 6.0, 6.0])  # by hand
  rank_y = np.array([1.0, 5.0, 2.5, 2.5, 7.0, 4.0, 6.0])
  assert M.spearman(x, y) == pytest.approx(pearson(rank_x, rank_y), rel=1e-12)


def test_spearman_invariant_to_monotone_transforms():
  rng = np.random.default_rng(5)
  x = rng.normal(size=200)
  y = x + rng.normal(size=200)
  base = M.spearman(x, y)
  assert 0.3 < base < 1.0
  assert M.spearman(np.exp(x), y ** 3) == pytest.approx(base, rel=1e-12)
  assert M.spearman(-x, y) == pytest.approx(-base, rel=1e-12)


def test_spearman_constant_input_is_nan():
  assert math.isnan(M.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
  assert math.isnan(M.spearman([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))


# ---------------------------------------------------------------- reports

def test_at_bounds_counts_values_within_a_tolerance_of_each_bound():
  values = np.array([0.05, 0.0509, 0.06, 0.5, 0.995, 1.0])
  # Range 0.95, tolerance 1% -> margin 0.0095.
  stats = M.at_bounds(values, 0.05, 1.0, "tau")
  assert stats == {"tau_at_min": pytest.approx(2 / 6),
                   "tau_at_max": pytest.approx(2 / 6)}
  assert M.at_bounds(values, 0.05, 1.0, "tau", tolerance=0.02)[
      "tau_at_min"] == pytest.approx(3 / 6)


def test_observed_rate_and_its_standard_error():
  rate, se = M.observed_rate(np.r_[np.ones(50), np.zeros(950)])
  assert rate == pytest.approx(0.05)
  assert se == pytest.approx(np.sqrt(0.05 * 0.95 / 1000))
  assert all(np.isnan(M.observed_rate(np.array([]))))
  report = M.binary_report(np.zeros(4), np.full(4, 0.1), "cvr")
  assert np.isnan(report["cvr_pred_obs_ratio_se"])


def test_distribution():
  values = np.random.default_rng(7).random(101) * 3.0
  stats = M.distribution(values, "tau")
  assert set(stats) == {"tau_mean", "tau_std", "tau_p5", "tau_p25", "tau_p50",
                        "tau_p75", "tau_p95"}
  assert stats["tau_mean"] == pytest.approx(values.mean())
  assert stats["tau_std"] == pytest.approx(values.std())
  for q in (5, 25, 50, 75, 95):
    assert stats[f"tau_p{q}"] == pytest.approx(np.percentile(values, q))
  assert stats["tau_p50"] == pytest.approx(np.sort(values)[50])
  assert all(isinstance(v, float) for v in stats.values())


def test_binary_report():
  labels = np.array([0, 0, 1, 1, 1])
  probs = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
  report = M.binary_report(labels, probs, "ctr")
  assert set(report) == {"ctr_auc", "ctr_logloss", "ctr_ece",
                         "ctr_pred_obs_ratio", "ctr_count", "ctr_observed_rate",
                         "ctr_observed_rate_se", "ctr_pred_obs_ratio_se",
                         "ctr_reliability"}
  assert report["ctr_reliability"] == M.reliability_bins(labels, probs)
  se = np.sqrt(0.6 * 0.4 / 5)
  assert report["ctr_observed_rate"] == pytest.approx(0.6)
  assert report["ctr_observed_rate_se"] == pytest.approx(se)
  assert report["ctr_pred_obs_ratio_se"] == pytest.approx(2.55 / 3 * se / 0.6)
  assert report["ctr_auc"] == pytest.approx(brute_force_auc(labels, probs))
  assert report["ctr_logloss"] == pytest.approx(M.log_loss(labels, probs))
  assert report["ctr_ece"] == pytest.approx(
      M.expected_calibration_error(labels, probs))
  assert report["ctr_pred_obs_ratio"] == pytest.approx(2.55 / 3)
  assert report["ctr_count"] == 5 and isinstance(report["ctr_count"], int)


def test_paired_interval_is_the_t_interval_of_the_mean_difference():
  mean, low, high = M.paired_interval([1.0, 2.0, 3.0])
  # mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732.
  assert mean == pytest.approx(2.0)
  assert (low, high) == pytest.approx((2.0 - 4.303 / 3 ** 0.5,
                                       2.0 + 4.303 / 3 ** 0.5), rel=1e-6)
  mean, low, high = M.paired_interval([0.01] * 5 + [0.03] * 5)
  half = 2.262 * np.std([0.01] * 5 + [0.03] * 5, ddof=1) / 10 ** 0.5
  assert (low, high) == pytest.approx((0.02 - half, 0.02 + half))
  mean, low, high = M.paired_interval([0.5])
  assert mean == 0.5 and np.isnan(low) and np.isnan(high)
  _, low, high = M.paired_interval(np.arange(100.0))   # large n: normal
  assert high - 49.5 == pytest.approx(1.96 * np.std(np.arange(100.0),
                                                    ddof=1) / 10)


# ---------------------------------------------------------------- reliability

def test_reliability_bins_are_equal_mass_sum_to_the_rows_and_give_the_ece():
  rng = np.random.default_rng(3)
  probs = rng.beta(0.5, 12.0, 1003)       # rare positives, crowded near 0
  labels = (rng.random(1003) < probs).astype(np.float64)
  bins = M.reliability_bins(labels, probs)
  assert len(bins) == M.RELIABILITY_BINS
  counts = [b["count"] for b in bins]
  assert sum(counts) == 1003 and max(counts) - min(counts) <= 1
  means = [b["mean_pred"] for b in bins]
  assert means == sorted(means)               # in order of the prediction
  order = np.argsort(probs, kind="mergesort")
  first = order[:counts[0]]
  assert bins[0]["mean_pred"] == pytest.approx(probs[first].mean())
  assert bins[0]["observed"] == pytest.approx(labels[first].mean())
  ece = sum(b["count"] * abs(b["mean_pred"] - b["observed"]) for b in bins)
  assert M.expected_calibration_error(labels, probs) == pytest.approx(
      ece / 1003)
  json.dumps(bins, allow_nan=False)          # plain JSON
  assert [b["count"] for b in M.reliability_bins([1, 0, 1], [.2, .5, .9])] \
      == [1, 1, 1]                             # fewer rows than bins
  assert M.reliability_bins([], []) == []
  assert math.isnan(M.expected_calibration_error([], []))


# ---------------------------------------------------------------- GAUC

def direct_gauc(labels, scores, groups):
  """Per group with both classes: its brute-force AUC, rows and positives;
  the count of single-class groups."""
  aucs, rows, positives, excluded = [], [], [], 0
  for g in sorted(set(groups.tolist())):
    mask = groups == g
    y = labels[mask]
    if y.min() == y.max():
      excluded += 1
      continue
    aucs.append(brute_force_auc(y, scores[mask]))
    rows.append(mask.sum())
    positives.append(y.sum())
  return np.array(aucs), np.array(rows), np.array(positives), excluded


def test_gauc_against_a_direct_per_group_computation():
  rng = np.random.default_rng(5)
  groups = rng.integers(0, 12, 400)
  labels = (rng.random(400) < 0.1 + 0.05 * (groups % 4)).astype(np.float64)
  labels[groups == 3] = 0.0                   # single-class groups
  labels[groups == 7] = 1.0
  scores = np.round(rng.random(400) + 0.4 * labels, 1)   # with ties
  aucs, rows, positives, excluded = direct_gauc(labels, scores, groups)
  report = M.group_auc(labels, scores, groups, "ctr")
  assert excluded >= 2
  assert report["ctr_gauc_excluded"] == excluded
  assert report["ctr_gauc_groups"] == len(aucs) == 12 - excluded
  assert report["ctr_gauc"] == pytest.approx(np.sum(aucs * rows) / rows.sum())
  assert report["ctr_gauc_pos_weighted"] == pytest.approx(
      np.sum(aucs * positives) / positives.sum())
  assert report["ctr_gauc_row_share"] == pytest.approx(rows.sum() / 400)
  assert report["ctr_gauc"] != pytest.approx(report["ctr_gauc_pos_weighted"])


def test_gauc_of_string_keys_and_without_any_mixed_group():
  labels = np.array([1, 0, 1, 0, 0, 0], np.float64)
  scores = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.4])
  groups = np.array([b"u1", b"u1", b"u2", b"u2", b"u3", b"u3"], object)
  report = M.group_auc(labels, scores, groups, "cvr")
  # u1: AUC 1 (2 rows), u2: AUC 0 (2 rows), u3: one class, left out.
  assert report["cvr_gauc"] == pytest.approx(0.5)
  assert (report["cvr_gauc_groups"], report["cvr_gauc_excluded"]) == (2, 1)
  none = M.group_auc(np.zeros(4), np.ones(4), np.arange(4), "cvr")
  assert math.isnan(none["cvr_gauc"]) and none["cvr_gauc_groups"] == 0
  assert none["cvr_gauc_excluded"] == 4 and none["cvr_gauc_row_share"] == 0
  with pytest.raises(ValueError, match="groups .* and labels .* differ"):
    M.group_auc(labels, scores, groups[:5], "cvr")


@pytest.mark.parametrize("calibrate", [
    lambda p: 1 / (1 + np.exp(-(0.7 * np.log(p / (1 - p)) - 0.4))),  # Platt
    lambda p: np.interp(p, [0, .05, .2, 1], [0, .02, .3, 1]),  # isotonic-like
])
def test_a_monotone_calibration_changes_neither_auc_nor_gauc(calibrate):
  rng = np.random.default_rng(9)
  probs = rng.uniform(0.01, 0.6, 2000)
  labels = (rng.random(2000) < probs).astype(np.float64)
  groups = rng.integers(0, 30, 2000)
  calibrated = calibrate(probs)
  assert not np.allclose(calibrated, probs)
  assert M.auc(labels, calibrated) == M.auc(labels, probs)
  assert M.group_auc(labels, calibrated, groups, "t") == M.group_auc(
      labels, probs, groups, "t")


# ---------------------------------------------------------------- segments

def test_segment_calibration_on_the_most_frequent_values():
  segments = np.array([4] * 5 + [9] * 3 + [2] * 3 + [7])
  labels = np.array([1, 0, 0, 0, 0,  1, 1, 0,  0, 0, 0,  1], np.float64)
  probs = np.array([.2] * 5 + [.5] * 3 + [.1] * 3 + [.9])
  top = M.segment_calibration(labels, probs, segments, top_k=3)
  assert [s["value"] for s in top] == [4, 2, 9]   # by count, ties: smaller
  first = top[0]
  assert first["count"] == 5
  assert first["mean_pred"] == pytest.approx(0.2)
  assert first["observed"] == pytest.approx(0.2)
  assert first["observed_se"] == pytest.approx(np.sqrt(0.2 * 0.8 / 5))
  assert first["pred_obs_ratio"] == pytest.approx(1.0)
  assert top[1]["pred_obs_ratio"] is None        # no positives: undefined
  assert top[2]["pred_obs_ratio"] == pytest.approx(1.5 / 2)
  json.dumps(top, allow_nan=False)
  named = M.segment_calibration(labels[:2], probs[:2],
                                np.array([b"de", b"de"], object))
  assert named[0]["value"] == "de" and len(named) == 1
