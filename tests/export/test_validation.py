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
