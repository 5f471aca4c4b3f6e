"""Tests of adaftr_tf/config/sections.py: data, model, train, runtime."""

import dataclasses
import re

import pytest

from adaftr_tf import choices
from adaftr_tf import config as C
from adaftr_tf import experiments
from adaftr_tf import overrides


def _default():
  return C.Config()


def _invalid(items, pattern):
  config = overrides.apply(_default(), items)
  with pytest.raises(C.ConfigError, match=pattern):
    config.validate()


@pytest.mark.parametrize("backbone, shared_experts, expected", [
    ("mmoe", 2, True), ("shared_bottom", 2, True), ("ple", 1, True),
    ("ple", 0, False), ("shared_embedding", 2, False),
    ("single_task", 2, False)])
def test_has_shared_experts(backbone, shared_experts, expected):
  model = C.ModelConfig(backbone=backbone, ple_shared_experts=shared_experts)
  assert model.has_shared_experts is expected


@pytest.mark.reliability
def test_config_rejects_an_unknown_policy():
  with pytest.raises(ValueError, match="data.non_finite_policy='skip' is not "
                     r"valid; choose one of \('error', 'replace'\)"):
    overrides.apply(experiments.get_preset("tiny"),
                               ["data.non_finite_policy=skip"]).validate()


def test_the_synthetic_world_choice_is_validated():
  config = dataclasses.replace(_default(), data=dataclasses.replace(
      _default().data, synthetic=dataclasses.replace(
          _default().data.synthetic, relatedness="half")))
  with pytest.raises(C.ConfigError, match="data.synthetic.relatedness='half' "
                     "is not valid; choose one of"):
    config.validate()


def test_the_group_field_must_name_a_field():
  assert _default().data.group_field == "auto"
  _invalid(["data.group_field="], "data.group_field='' must name a "
           "categorical field of the data, or be auto")
  overrides.apply(_default(), ["data.group_field=f101"]).validate()


@pytest.mark.parametrize("items, pattern", [
    (["train.holdout_fold=0"], r"train\.holdout_fold=0 needs train\.folds "
     ">= 2"),
    (["train.folds=1", "train.holdout_fold=0"], r"train\.folds=1 needs "
     r"folds >= 2 and train\.holdout_fold in \[0, folds\)"),
    (["train.folds=2"], r"train\.holdout_fold in \[0, folds\) \(got None\)"),
    (["train.folds=2", "train.holdout_fold=2"], r"\(got 2\)")])
def test_cross_fitting_folds_are_validated(items, pattern):
  _invalid(items, pattern)
  valid = overrides.apply(_default(), ["train.folds=3",
                                       "train.holdout_fold=2"]).validate()
  assert (valid.train.folds, valid.train.holdout_fold) == (3, 2)
