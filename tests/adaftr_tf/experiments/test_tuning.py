"""Tests of adaftr_tf/experiments/tuning.py: tuned knobs and sweep spaces."""

import json

import pytest

from adaftr_tf import config as C
from adaftr_tf import experiments
from adaftr_tf import overrides


def test_tuned_and_sweep_keys_are_valid_config_keys():
  base = experiments.get_preset("bench")
  for knobs in experiments.TUNED.values():
    overrides.apply(base, list(knobs)).validate()
  for name in experiments.method_names():
    for key, values in experiments.sweep_space(name).items():
      for value in values:
        overrides.apply(base, [f"{key}={value}"])


def test_every_method_has_a_sweep_space_with_the_shared_knobs():
  for name in experiments.method_names():
    space = experiments.sweep_space(name)
    assert set(experiments.SHARED_SPACE) <= set(space)
  assert "loss.contrastive_weight" in experiments.sweep_space("adaftr_tower_input")
