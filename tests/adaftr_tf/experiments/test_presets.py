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


def test_large_experts_is_mtreclibs_default_mmoe():
  """Embedding 128 over 16 + 1 fields (2176 expert inputs), 8 experts
  512 -> 256, towers 128 -> 64, dropout 0.2, batch 2048, no alignment."""
  config = experiments.get_preset("large_experts")
  m, synthetic = config.model, config.data.synthetic
  assert (m.name, m.backbone, m.num_experts, m.expert_units, m.tower_units,
          m.dropout) == ("multitask", "mmoe", 8, (512, 256), (128, 64), 0.2)
  fields = synthetic.num_categorical + synthetic.num_numerical
  assert fields * m.embedding_dim == (16 + 1) * 128
  assert (config.train.batch_size, config.train.learning_rate) == (2048, 1e-3)
