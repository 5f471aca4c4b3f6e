"""Tests of adaftr_tf.overrides: `key=value` text to typed config fields."""

import dataclasses

import pytest

from adaftr_tf import config as C
from adaftr_tf import overrides


def _default():
  return C.Config()


@pytest.mark.parametrize("override, getter, expected", [
    ("train.batch_size=256", lambda c: c.train.batch_size, 256),
    ("train.batch_size = 1_024", lambda c: c.train.batch_size, 1024),
    ("data.synthetic.num_train=10", lambda c: c.data.synthetic.num_train, 10),
    ("train.learning_rate=1e-3", lambda c: c.train.learning_rate, 1e-3),
    ("loss.tau_min=0.1", lambda c: c.loss.tau_min, 0.1),
    ("model.dropout=0", lambda c: c.model.dropout, 0.0),
    ("loss.symmetric=false", lambda c: c.loss.symmetric, False),
    ("loss.symmetric=True", lambda c: c.loss.symmetric, True),
    ("loss.relatedness_stop_gradient=0",
     lambda c: c.loss.relatedness_stop_gradient, False),
    ("runtime.jit_compile=1", lambda c: c.runtime.jit_compile, True),
    ("model.name=multitask", lambda c: c.model.name, "multitask"),
    ("data.source=files", lambda c: c.data.source, "files"),
    ("model.expert_units=(32,16)", lambda c: c.model.expert_units, (32, 16)),
    ("model.expert_units=32, 16, 8", lambda c: c.model.expert_units,
     (32, 16, 8)),
    ("model.tower_units=5", lambda c: c.model.tower_units, (5,)),
    ("loss.fixed_tau=0.3", lambda c: c.loss.fixed_tau, 0.3),
    ("loss.fixed_tau=None", lambda c: c.loss.fixed_tau, None),
    ("loss.fixed_tau=none", lambda c: c.loss.fixed_tau, None),
    ("train.steps_per_epoch=12", lambda c: c.train.steps_per_epoch, 12),
    ("train.steps_per_epoch=None", lambda c: c.train.steps_per_epoch, None),
])
def test_override_each_field_type(override, getter, expected):
  base = overrides.apply(_default(), ["loss.fixed_tau=0.5",
                                      "train.steps_per_epoch=3"])
  config = overrides.apply(base, [override])
  value = getter(config)
  assert value == expected
  assert type(value) is type(expected)
  config.validate()


def test_overrides_apply_in_order_and_leave_the_rest_alone():
  base = _default()
  config = overrides.apply(base, ["train.epochs=5", "train.epochs=6",
                                  "loss.tau_max=2.0"])
  assert config.train.epochs == 6
  assert config.loss.tau_max == 2.0
  assert base.train.epochs == 3  # the input is not mutated
  assert dataclasses.replace(config, train=base.train,
                             loss=base.loss) == base


def test_a_choice_is_checked_when_overridden():
  # Only the first '=' separates key and value.
  with pytest.raises(C.ConfigError, match="model.name='a=b' is not valid; "
                     r"choose one of \('adaftr', 'multitask', 'aitm'\)"):
    overrides.apply(_default(), ["model.name=a=b"])


def test_override_without_equals_sign():
  with pytest.raises(C.ConfigError, match=r"'train\.batch_size' must look like "
                     "key=value"):
    overrides.apply(_default(), ["train.batch_size"])


def test_override_unknown_field_lists_valid_keys():
  with pytest.raises(C.ConfigError,
                     match="unknown config key 'loss.tau_mn'") as info:
    overrides.apply(_default(), ["loss.tau_mn=0.1"])
  message = str(info.value)
  assert "under loss" in message
  for field in dataclasses.fields(C.LossConfig):
    assert field.name in message


def test_override_unknown_section_lists_sections():
  with pytest.raises(C.ConfigError, match="'optim' is not one of") as info:
    overrides.apply(_default(), ["optim.learning_rate=0.1"])
  message = str(info.value)
  assert "the top level" in message
  for section in ("data", "model", "loss", "train", "runtime"):
    assert f"'{section}'" in message


def test_a_moved_key_is_refused_naming_where_it_lives_now():
  with pytest.raises(C.ConfigError, match="unknown config key "
                     "'train.strategy'") as info:
    overrides.apply(_default(), ["train.strategy=mirrored"])
  assert "checkpoint_every_steps" in str(info.value)


def test_override_unknown_nested_key_names_its_parent():
  with pytest.raises(C.ConfigError, match=r"under data\.synthetic") as info:
    overrides.apply(_default(), ["data.synthetic.rows=3"])
  assert "num_train" in str(info.value)


def test_override_of_a_whole_section_is_rejected():
  with pytest.raises(C.ConfigError, match="'loss' is a section") as info:
    overrides.apply(_default(), ["loss=3"])
  assert "tau_min" in str(info.value)


def test_override_below_a_leaf_is_rejected():
  with pytest.raises(C.ConfigError, match="'tau_min' has no sub-fields"):
    overrides.apply(_default(), ["loss.tau_min.x=3"])


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
    ("runtime.strategy=tpu", r"runtime\.strategy='tpu' is not valid"),
])
def test_override_wrong_type(override, pattern):
  with pytest.raises(C.ConfigError, match=pattern):
    overrides.apply(_default(), [override])
