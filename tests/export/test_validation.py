"""Tests of export/validation.py: AUC floors, drops and the policy."""

import pytest

from export import validation


def test_validation_problems_and_policy_errors():
  report = {"ctr_auc": 0.70, "cvr_auc": 0.60, "ctcvr_auc": float("nan")}
  previous = {"metrics": {"ctr_auc": 0.72, "cvr_auc": 0.70, "ctcvr_auc": 0.8}}
  found = validation.problems(report, validation.Policy(
      min_auc={"ctr": 0.75}, max_auc_drop=0.05), previous, 7)
  assert len(found) == 3
  assert "ctr_auc 0.7000 is below the floor 0.7500" in found[0]
  assert "cvr_auc 0.6000 is 0.1000 below version 7's 0.7000" in found[1]
  assert "ctcvr_auc is nan" in found[2]
  assert validation.problems(report | {"ctcvr_auc": 0.8}, validation.Policy(
      max_auc_drop=0.2), previous, 7) == []
  with pytest.raises(ValueError, match="unknown tasks \\['click'\\]"):
    validation.Policy(min_auc={"click": 0.5})
  with pytest.raises(ValueError, match="max_auc_drop must be >= 0"):
    validation.Policy(max_auc_drop=-1)


def _calibrated(ratio, se):
  return {"ctr_auc": 0.8, "cvr_auc": 0.7, "ctcvr_auc": 0.9,
          "ctr_pred_obs_ratio": 1.0, "ctr_pred_obs_ratio_se": 0.01,
          "cvr_pred_obs_ratio": ratio, "cvr_pred_obs_ratio_se": se,
          "ctcvr_pred_obs_ratio": 1.01, "ctcvr_pred_obs_ratio_se": 0.02}


def test_the_gate_refuses_a_miscalibrated_candidate_beyond_its_noise():
  policy = validation.Policy()   # tolerance 0.05
  found = validation.problems(_calibrated(1.20, 0.01), policy)
  assert found == ["cvr predicted/observed 1.200 on the valid split is "
                   "further from 1 than 0.050 (the tolerance 0.05, "
                   "--calibration_tolerance, or 3 standard errors of the "
                   "observed rate)"]
  # A small validation split: 3 standard errors (0.3) bound the ratio.
  assert validation.problems(_calibrated(1.20, 0.10), policy) == []
  assert "further from 1 than 0.300" in validation.problems(
      _calibrated(0.65, 0.10), policy)[0]
  assert validation.problems(_calibrated(1.04, 0.001), policy) == []
  assert validation.problems(_calibrated(1.20, 0.01), validation.Policy(
      calibration_tolerance=None)) == []
  assert validation.problems(_calibrated(float("nan"), 0.01), policy)
  with pytest.raises(ValueError, match="calibration_tolerance must be >= 0"):
    validation.Policy(calibration_tolerance=-0.1)


def test_stored_calibration_figures_are_printed_by_the_check():
  from export import inspection
  metrics = _calibrated(1.02, 0.03) | {
      "calibration_method": "platt",
      "uncalibrated": _calibrated(1.25, 0.03)}
  line, = inspection.calibration_lines(metrics, ("ctr", "cvr", "ctcvr"))
  assert line == ("  predicted/observed on valid, calibration platt: ctr "
                  "1.000 ± 0.010 (uncalibrated 1.000 ± 0.010), cvr 1.020 ± "
                  "0.030 (uncalibrated 1.250 ± 0.030), ctcvr 1.010 ± 0.020 "
                  "(uncalibrated 1.010 ± 0.020)")
