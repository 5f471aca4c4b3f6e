"""Tests of pipelines/benchmarks/sweep.py: equal-budget trial drawing."""

import pytest

from adaftr_tf import experiments
from pipelines.benchmarks import sweep


@pytest.mark.parametrize("method", experiments.method_names())
def test_every_method_has_a_space_and_equal_budget(method):
  trials = sweep.draw_trials(method, 5, seed=1)
  assert len(trials) == 5
  assert len({tuple(t) for t in trials}) == 5
  assert trials == sweep.draw_trials(method, 5, seed=1)  # seeded
  assert trials[0] == []  # the method as defined is always a trial
  keys = {o.split("=")[0] for o in trials[1]}
  assert set(experiments.SHARED_SPACE) <= keys


def test_unknown_method_has_no_space():
  with pytest.raises(ValueError, match="unknown method 'nope'"):
    sweep.draw_trials("nope", 2, seed=0)


def test_selection_and_table_follow_the_reported_tasks():
  funnel = {"ctr_auc": 0.8, "cvr_auc": 0.7, "ctcvr_auc": 0.9,
            "ctr_gauc": 0.78, "cvr_gauc": 0.68, "ctcvr_gauc": 0.88}
  independent = {"income_50k_auc": 0.95, "never_married_auc": 0.99,
                 "mean_auc": 0.97}
  assert sweep.selection_score(funnel) == pytest.approx(0.8)
  assert sweep.selection_score(independent) == pytest.approx(0.97)
  result = {"method": "mmoe", "budget": 1, "preset": "bench", "seed": 0,
            "trials": [{"overrides": [], "score": 0.8, "valid": funnel}]}
  table = sweep.markdown(result).splitlines()
  assert table[2] == ("| rank | valid score | CTR AUC | CVR AUC | CTCVR AUC | "
                      "CTR GAUC | CVR GAUC | CTCVR GAUC | overrides |")
  assert table[4].startswith("| 1 | 0.8000 | 0.8000 | 0.7000 | 0.9000 | "
                             "0.7800 |")
  result["trials"][0]["valid"] = independent
  assert "| income_50k AUC | never_married AUC |" in sweep.markdown(result)
