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
