"""Tests of adaftr_tf/calibration.py: Platt and isotonic recover the true
probabilities of a miscalibrated model, keep every ranking, fit the right
rows, and round-trip as JSON."""

import numpy as np
import pytest

from adaftr_tf import calibration as C
from adaftr_tf import features as F
from adaftr_tf import metrics
from adaftr_tf import objective as objective_lib


def _miscalibrated(n=200_000, seed=0):
  """(model logit, true probability, labels): the model's logit is 2 z + 1
  for the true logit z (over-confident and biased upwards)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(-2.5, 1.2, n)
  p = 1 / (1 + np.exp(-z))
  return 2 * z + 1, p, (rng.random(n) < p).astype(np.float64)


@pytest.mark.parametrize("fitter", [C.fit_platt, C.fit_isotonic])
def test_recovers_the_true_probabilities(fitter):
  model_logit, p, y = _miscalibrated()
  before = np.abs(1 / (1 + np.exp(-model_logit)) - p).mean()
  curve = fitter(model_logit, y)
  calibrated = 1 / (1 + np.exp(-C.apply_numpy(curve, model_logit)))
  after = np.abs(calibrated - p).mean()
  assert before > 0.04 and after < 0.01, (before, after)
  assert calibrated.mean() == pytest.approx(y.mean(), rel=0.03)


@pytest.mark.parametrize("fitter", [C.fit_platt, C.fit_isotonic])
def test_the_map_is_strictly_increasing_so_rankings_are_unchanged(fitter):
  model_logit, _, y = _miscalibrated(50_000, seed=1)
  curve = fitter(model_logit, y)
  grid = np.unique(np.concatenate([np.linspace(-60, 60, 20_001), curve.x]))
  assert np.all(np.diff(C.apply_numpy(curve, grid)) > 0)
  ties = np.round(model_logit, 1)       # many tied scores
  calibrated = C.apply_numpy(curve, ties)
  assert metrics.auc(y, calibrated) == metrics.auc(y, ties)
  groups = np.arange(len(y)) % 50
  for g in range(3):
    rows = groups == g
    assert metrics.auc(y[rows], calibrated[rows]) == metrics.auc(
        y[rows], ties[rows])


def test_isotonic_is_a_monotone_fit_of_binned_rates():
  rates = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.9])
  fitted = C._pool_adjacent_violators(rates, np.ones(6))
  np.testing.assert_allclose(fitted, [0.1, 0.25, 0.25, 0.45, 0.45, 0.9])
  rng = np.random.default_rng(3)
  z = rng.normal(0, 2, 20_000)
  y = (rng.random(20_000) < 1 / (1 + np.exp(-z))).astype(float)
  curve = C.fit_isotonic(z, y)
  assert 2 <= len(curve.x) <= C.MAX_BINS
  assert np.all(np.diff(curve.t) >= C.MIN_STEP - 1e-12)
  few = C.fit_isotonic(z[:30], y[:30])  # too few positives for two bins
  assert len(few.x) == 2                # Platt's line instead


def test_curves_refuse_non_increasing_knots():
  with pytest.raises(ValueError, match="strictly increasing"):
    C.Curve((0.0, 1.0), (1.0, 0.5), 1.0, 1.0)
  with pytest.raises(ValueError, match=">= 2 knots"):
    C.Curve((0.0,), (1.0,), 1.0, 1.0)


def test_fit_uses_the_clicked_rows_for_cvr_and_round_trips():
  rng = np.random.default_rng(4)
  n = 40_000
  ctr = 1 / (1 + np.exp(-rng.normal(-2, 1, n)))
  click = (rng.random(n) < ctr).astype(float)
  cvr = 1 / (1 + np.exp(-rng.normal(-1, 1, n)))
  conversion = click * (rng.random(n) < cvr)
  collected = {F.CTR: ctr, F.CVR: cvr, F.CTCVR: ctr * cvr, F.CLICK: click,
               F.CONVERSION: conversion}
  fitted = C.fit(collected, "platt")
  assert set(fitted.curves) == {F.CTR_LOGIT, F.CVR_LOGIT, F.CTCVR_LOGIT}
  clicked = click > 0.5
  assert fitted.curves[F.CVR_LOGIT] == C.fit_platt(
      C._logit(cvr[clicked]), conversion[clicked])
  assert C.Calibration.from_json(fitted.to_json()) == fitted
  assert C.fit(collected, "none") == C.Calibration()
  with pytest.raises(ValueError, match="train.calibration='sigmoid' is not "
                     "valid; choose one of"):
    C.fit(collected, "sigmoid")
  calibrated = C.calibrate_collected(collected, fitted)
  ratio = calibrated[F.CVR][clicked].mean() / conversion[clicked].mean()
  assert ratio == pytest.approx(1.0, abs=0.02)
  independent = objective_lib.Objective(F.INDEPENDENT, ("a", "b"))
  assert set(C.fit(collected, "isotonic", independent).curves) == {
      F.CTR_LOGIT, F.CVR_LOGIT}   # every row each, no CTCVR


@pytest.mark.parametrize("fitter", [C.fit_platt, C.fit_isotonic])
def test_a_rare_label_keeps_its_rate_on_fresh_rows(fitter):
  """~0.5% positives concentrated in the top scores (CTCVR-like): fitted on
  40k rows (~170 positives), the calibrated mean on 1M fresh rows is off
  the true rate by the fitting rows' own sampling error only."""
  rng = np.random.default_rng(5)
  def draw(n):
    z = rng.normal(-6.5, 1.5, n)
    p = 1 / (1 + np.exp(-z))
    return 1.5 * z + 2.0, p, (rng.random(n) < p).astype(np.float64)
  model_logit, p, y = draw(40_000)
  curve = fitter(model_logit, y)
  fresh_logit, fresh_p, _ = draw(1_000_000)
  calibrated = 1 / (1 + np.exp(-C.apply_numpy(curve, fresh_logit)))
  sample_error = y.mean() / p.mean()          # what the fit cannot know
  assert calibrated.mean() / fresh_p.mean() == pytest.approx(sample_error,
                                                             abs=0.02)
