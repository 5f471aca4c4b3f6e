"""Tests of adaftr_tf/experiments/registry.py: registering and looking up."""

import json

import pytest

from adaftr_tf import config as C
from adaftr_tf import experiments
from adaftr_tf import overrides


def test_get_preset_returns_fresh_equal_objects():
  assert experiments.get_preset("tiny") == experiments.get_preset("tiny")


def test_unknown_preset_lists_valid_presets():
  with pytest.raises(C.ConfigError, match="unknown preset 'nope'") as info:
    experiments.get_preset("nope")
  for name in experiments.preset_names():
    assert name in str(info.value)


def test_config_of_applies_overrides_and_validates():
  config = experiments.config_of("tiny", ["train.epochs=4"])
  assert config.train.epochs == 4
  with pytest.raises(C.ConfigError, match="loss.tau_min=2.0 must be <"):
    experiments.config_of("tiny", ["loss.tau_min=2.0"])


def test_unknown_method_lists_valid_methods():
  with pytest.raises(C.ConfigError, match="unknown method 'nope'") as info:
    experiments.get_method("nope")
  assert "esmm" in str(info.value) and "adaftr" in str(info.value)


def test_replace_fields_changes_only_the_named_fields():
  base = C.Config()
  changed = experiments.replace_fields(base, model={"name": "aitm"},
                                       train={"seed": 1})
  assert (changed.model.name, changed.train.seed) == ("aitm", 1)
  assert changed.model.backbone == base.model.backbone
  assert json.loads(changed.to_json())["loss"] == json.loads(
      base.to_json())["loss"]


def test_registering_a_name_twice_is_refused():
  with pytest.raises(ValueError, match="registered twice"):
    experiments.preset("tiny")(lambda: C.Config())
  with pytest.raises(ValueError, match="registered twice"):
    experiments.method("esmm", "bottom")(lambda c: c)


def test_groups_name_registered_methods():
  core = experiments.group_members("core")
  assert core == experiments.method_names()[:len(core)]   # registered first
  assert set(experiments.group_members("plugin")) <= set(
      experiments.method_names())
  with pytest.raises(C.ConfigError, match="unknown method group 'nope'; "
                     r"valid groups: \['census', 'click_gate', 'core'"):
    experiments.group_members("nope")
  with pytest.raises(ValueError, match="registered twice"):
    experiments.group("core", ["esmm"])
  with pytest.raises(ValueError, match="unregistered methods"):
    experiments.group("new_group", ["esmm", "nope"])
