"""Tests of adaftr_tf/experiments/presets.py."""

import json

import pytest

from adaftr_tf import config as C
from adaftr_tf import experiments
from adaftr_tf import overrides


@pytest.mark.parametrize("name", experiments.preset_names())
def test_every_preset_validates_and_round_trips_json(name):
  config = experiments.get_preset(name)
  assert isinstance(config, C.Config)
  assert config.validate() is config
  text = config.to_json()
  restored = C.Config.from_json(text)
  assert restored == config
  assert isinstance(restored.model.expert_units, tuple)
  assert restored.to_json() == text


def test_presets_differ_where_documented():
  assert experiments.get_preset("demo") == C.Config()
  assert experiments.get_preset("demo_mmoe").model.name == "multitask"
  tiny = experiments.get_preset("tiny")
  assert tiny.data.synthetic.num_train < C.Config().data.synthetic.num_train
  assert experiments.get_preset("aliexpress").data.source == "files"
