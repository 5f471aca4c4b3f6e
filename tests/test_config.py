"""Tests of adaftr_tf.config: presets, overrides, validation, JSON round trip."""

import dataclasses
import json
import re

import pytest

from adaftr_tf import config as C


def _default():
  return C.Config()


# ------------------------------------------------------------------ presets

@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_every_preset_validates_and_round_trips_json(name):
  config = C.get_preset(name)
  assert isinstance(config, C.Config)
  assert config.validate() is config
  text = config.to_json()
  assert json.loads(text)["model"]["name"] == config.model.name
  restored = C.Config.from_json(text)
  assert restored == config
  # Tuples come back as tuples, not JSON lists.
  assert isinstance(restored.model.expert_units, tuple)
  assert isinstance(restored.loss.relatedness_units, tuple)
  assert restored.to_json() == text


def test_presets_differ_where_documented():
  assert C.get_preset("demo") == C.Config()
  assert C.get_preset("demo_mmoe").model.name == "multitask"
  tiny = C.get_preset("tiny")
  assert tiny.data.synthetic.num_train < C.Config().data.synthetic.num_train
  assert tiny.train.batch_size >= 2


def test_get_preset_returns_fresh_equal_objects():
  assert C.get_preset("tiny") == C.get_preset("tiny")


def test_unknown_preset_lists_valid_presets():
  with pytest.raises(ValueError, match="unknown preset 'nope'") as info:
    C.get_preset("nope")
  for name in C.PRESETS:
    assert name in str(info.value)


def test_json_round_trip_keeps_none_and_changed_values():
  config = C.apply_overrides(_default(), [
      "loss.fixed_tau=0.2", "loss.temperature_mode=fixed",
      "train.steps_per_epoch=7", "model.tower_units=(8, 4)"])
  restored = C.Config.from_json(config.to_json())
  assert restored == config
  assert restored.loss.fixed_tau == 0.2
  assert restored.train.steps_per_epoch == 7
  assert restored.model.tower_units == (8, 4)
  default = C.Config.from_json(_default().to_json())
  assert default.loss.fixed_tau is None
  assert default.train.steps_per_epoch is None


def test_config_is_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    _default().train.batch_size = 3  # type: ignore[misc]


# ---------------------------------------------------------------- overrides

@pytest.mark.parametrize("override, getter, expected", [
    ("train.batch_size=256", lambda c: c.train.batch_size, 256),
    ("train.batch_size = 1_024", lambda c: c.train.batch_size, 1024),
    ("data.synthetic.num_train=10", lambda c: c.data.synthetic.num_train, 10),
    ("train.learning_rate=1e-3", lambda c: c.train.learning_rate, 1e-3),
    ("loss.tau_min=0.1", lambda c: c.loss.tau_min, 0.1),
    ("model.dropout=0", lambda c: c.model.dropout, 0.0),
    ("loss.symmetric=false", lambda c: c.loss.symmetric, False),
    ("loss.symmetric=True", lambda c: c.loss.symmetric, True),
    ("loss.relatedness_stop_gradient=0", lambda c: c.loss.relatedness_stop_gradient,
     False),
    ("export.include_tau=1", lambda c: c.export.include_tau, True),
    ("model.name=multitask", lambda c: c.model.name, "multitask"),
    ("data.source=files", lambda c: c.data.source, "files"),
    ("model.expert_units=(32,16)", lambda c: c.model.expert_units, (32, 16)),
    ("model.expert_units=32, 16, 8", lambda c: c.model.expert_units, (32, 16, 8)),
    ("model.tower_units=5", lambda c: c.model.tower_units, (5,)),
    ("loss.fixed_tau=0.3", lambda c: c.loss.fixed_tau, 0.3),
    ("loss.fixed_tau=None", lambda c: c.loss.fixed_tau, None),
    ("loss.fixed_tau=none", lambda c: c.loss.fixed_tau, None),
    ("train.steps_per_epoch=12", lambda c: c.train.steps_per_epoch, 12),
    ("train.steps_per_epoch=None", lambda c: c.train.steps_per_epoch, None),
])
def test_override_each_field_type(override, getter, expected):
  base = C.apply_overrides(_default(), ["loss.fixed_tau=0.5",
                                        "train.steps_per_epoch=3"])
  config = C.apply_overrides(base, [override])
  value = getter(config)
  assert value == expected
  assert type(value) is type(expected)
  config.validate()


def test_overrides_apply_in_order_and_leave_the_rest_alone():
  base = _default()
  config = C.apply_overrides(base, ["train.epochs=5", "train.epochs=6",
                                    "loss.tau_max=2.0"])
  assert config.train.epochs == 6
  assert config.loss.tau_max == 2.0
  assert base.train.epochs == 3  # the input is not mutated
  assert dataclasses.replace(config, train=base.train,
                             loss=base.loss) == base


def test_override_value_may_contain_equals_sign():
  # Only the first '=' separates key and value.
  with pytest.raises(ValueError, match="model.name='a=b' is not valid"):
    C.apply_overrides(_default(), ["model.name=a=b"]).validate()


def test_override_without_equals_sign():
  with pytest.raises(ValueError, match=r"'train\.batch_size' must look like "
                     "key=value"):
    C.apply_overrides(_default(), ["train.batch_size"])


def test_override_unknown_field_lists_valid_keys():
  with pytest.raises(ValueError, match="unknown config key 'loss.tau_mn'") as info:
    C.apply_overrides(_default(), ["loss.tau_mn=0.1"])
  message = str(info.value)
  assert "under loss" in message
  for field in dataclasses.fields(C.LossConfig):
    assert field.name in message


def test_override_unknown_section_lists_sections():
  with pytest.raises(ValueError, match="'optim' is not one of") as info:
    C.apply_overrides(_default(), ["optim.learning_rate=0.1"])
  message = str(info.value)
  assert "the top level" in message
  for section in ("data", "model", "loss", "train", "export"):
    assert f"'{section}'" in message


def test_override_unknown_nested_key_names_its_parent():
  with pytest.raises(ValueError, match=r"under data\.synthetic") as info:
    C.apply_overrides(_default(), ["data.synthetic.rows=3"])
  assert "num_train" in str(info.value)


def test_override_of_a_whole_section_is_rejected():
  with pytest.raises(ValueError, match="'loss' is a section") as info:
    C.apply_overrides(_default(), ["loss=3"])
  assert "tau_min" in str(info.value)


def test_override_below_a_leaf_is_rejected():
  with pytest.raises(ValueError, match="'tau_min' has no sub-fields"):
    C.apply_overrides(_default(), ["loss.tau_min.x=3"])


@pytest.mark.parametrize("override, pattern", [
    ("train.batch_size=abc", r"train\.batch_size must be an int, got 'abc'"),
    ("train.batch_size=1.5", r"train\.batch_size must be an int, got '1\.5'"),
    ("train.epochs=", r"train\.epochs must be an int"),
    ("train.learning_rate=fast", r"train\.learning_rate must be a number"),
    ("loss.symmetric=maybe", r"loss\.symmetric must be a bool \(true/false\), "
     "got 'maybe'"),
    ("model.expert_units=(32,x)", r"model\.expert_units must be an int"),
    ("loss.fixed_tau=small", r"loss\.fixed_tau must be a number"),
    ("train.steps_per_epoch=2.5", r"train\.steps_per_epoch must be an int"),
])
def test_override_wrong_type(override, pattern):
  with pytest.raises(ValueError, match=pattern):
    C.apply_overrides(_default(), [override])


# ---------------------------------------------------------------- validation

def _invalid(overrides, pattern):
  config = C.apply_overrides(_default(), overrides)
  with pytest.raises(ValueError, match=pattern):
    config.validate()


def test_default_config_validates():
  assert C.Config().validate() == C.Config()


@pytest.mark.parametrize("overrides, pattern", [
    (["loss.tau_min=0.5", "loss.tau_max=0.5"],
     r"loss\.tau_min=0\.5 must be < loss\.tau_max=0\.5"),
    (["loss.tau_min=2.0", "loss.tau_max=1.0"], r"loss\.tau_min=2\.0 must be <"),
    (["loss.tau_min=0"], r"loss\.tau_min=0\.0 must be > 0"),
    (["loss.fixed_tau=2.0"],
     r"loss\.fixed_tau=2\.0 must lie in \[tau_min, tau_max\] = \[0\.05, 1\.0\]"),
    (["loss.fixed_tau=0.01"], r"loss\.fixed_tau=0\.01 must lie in"),
    (["train.batch_size=1"], r"train\.batch_size=1: in-batch negatives need a "
     "batch of at least 2"),
    (["train.batch_size=0"], r"train\.batch_size=0 must be > 0"),
    (["train.learning_rate=-0.1"], r"train\.learning_rate=-0\.1 must be > 0"),
    (["train.learning_rate=0"], r"train\.learning_rate=0\.0 must be > 0"),
    (["train.learning_rate=inf"], r"train\.learning_rate=inf must be > 0"),
    (["train.learning_rate=nan"], r"train\.learning_rate=nan must be > 0"),
    (["model.dropout=1.0"], r"model\.dropout=1\.0 must lie in \[0, 1\)"),
    (["model.embedding_l2=-1"], r"model\.embedding_l2=-1\.0 must be >= 0"),
    (["model.expert_units=()"], r"model\.expert_units=\(\) must be a non-empty"),
    (["model.tower_units=(8,0)"], r"model\.tower_units=\(8, 0\) must be"),
    (["loss.contrastive_weight=-0.5"], r"loss\.contrastive_weight=-0\.5 must be "
     ">= 0"),
    (["data.synthetic.click_rate=1.0"], r"data\.synthetic\.click_rate=1\.0 must "
     r"lie in \(0, 1\)"),
    (["data.synthetic.num_train=0"], r"data\.synthetic\.num_train=0 must be > 0"),
    (["data.synthetic.num_categorical=0", "data.synthetic.num_numerical=0"],
     "at least one categorical or numerical field"),
    (["train.epochs=0"], r"train\.epochs=0 must be > 0"),
    (["train.steps_per_epoch=0"], r"train\.steps_per_epoch=0 must be > 0"),
    (["train.early_stopping_patience=-1"], r"early_stopping_patience=-1 must be "
     ">= 0"),
])
def test_contradictory_or_out_of_range_settings(overrides, pattern):
  _invalid(overrides, pattern)


def test_fixed_tau_on_the_bounds_is_valid():
  for tau in ("0.05", "1.0"):
    C.apply_overrides(_default(), [f"loss.fixed_tau={tau}"]).validate()


def test_batch_size_one_is_fine_without_contrastive_loss():
  C.apply_overrides(_default(), ["train.batch_size=1", "model.name=multitask"]).validate()
  C.apply_overrides(_default(), ["train.batch_size=1",
                                 "loss.contrastive_weight=0"]).validate()


@pytest.mark.parametrize("key, value, choices", [
    ("model.name", "esmm", C.MODEL_NAMES),
    ("model.backbone", "transformer", C.BACKBONES),
    ("train.optimizer", "sgd", C.OPTIMIZERS),
    ("loss.temperature_mode", "learned", C.TEMPERATURE_MODES),
    ("loss.relatedness_input", "towers", C.RELATEDNESS_INPUTS),
    ("loss.negatives", "hard", C.NEGATIVES),
    ("train.checkpoint_metric", "val_auc", C.CHECKPOINT_METRICS),
    ("data.source", "bigquery", ("synthetic", "files")),
])
def test_unknown_choice_lists_the_valid_ones(key, value, choices):
  config = C.apply_overrides(_default(), [f"{key}={value}"])
  with pytest.raises(ValueError, match=re.escape(f"{key}={value!r} is not valid")
                     ) as info:
    config.validate()
  assert str(choices) in str(info.value)


# --------------------------------------------------------------- from_dict

def test_from_dict_unknown_top_level_key_lists_valid_keys():
  with pytest.raises(ValueError, match=r"unknown config key\(s\) \['optim'\]") \
      as info:
    C.Config.from_dict({"optim": {}})
  assert "['data', 'export', 'loss', 'model', 'train']" in str(info.value)


def test_from_dict_unknown_nested_key_has_full_path():
  with pytest.raises(ValueError, match=r"\['loss\.tau'\]; valid keys under "
                     r"loss\.:") as info:
    C.Config.from_dict({"loss": {"tau": 0.1}})
  assert "tau_min" in str(info.value)


def test_from_dict_partial_uses_defaults():
  config = C.Config.from_dict({"train": {"batch_size": 64}})
  assert config.train.batch_size == 64
  assert config.train.learning_rate == C.TrainConfig().learning_rate
  assert config.model == C.ModelConfig()


@pytest.mark.parametrize("data, pattern", [
    ({"train": 3}, r"train must be a mapping, got 3"),
    ({"train": {"batch_size": True}}, r"train\.batch_size must be an int"),
    ({"train": {"batch_size": 2.5}}, r"train\.batch_size must be an int"),
    ({"loss": {"symmetric": "yes"}}, r"loss\.symmetric must be a bool"),
    ({"model": {"name": 3}}, r"model\.name must be a string, got 3"),
    ({"model": {"expert_units": 3}}, r"model\.expert_units must be a list"),
    ({"loss": {"tau_min": True}}, r"loss\.tau_min must be a number"),
])
def test_from_dict_wrong_types(data, pattern):
  with pytest.raises(ValueError, match=pattern):
    C.Config.from_dict(data)


def test_from_dict_accepts_integral_float_for_int_and_int_for_float():
  config = C.Config.from_dict({"train": {"batch_size": 64.0,
                                         "learning_rate": 1}})
  assert config.train.batch_size == 64 and type(config.train.batch_size) is int
  assert type(config.train.learning_rate) is float
