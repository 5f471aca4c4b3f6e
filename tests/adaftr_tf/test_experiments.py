"""Tests of adaftr_tf.experiments: presets, methods, tuned knobs, sweeps."""

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


# The methods as the benchmark defined them before the registry (override
# strings): the registry must give the same configs.
DEFINITIONS = {
    "single_task": ["model.name=multitask", "model.backbone=single_task"],
    "shared_bottom": ["model.name=multitask", "model.backbone=shared_bottom"],
    "esmm": ["model.name=multitask", "model.backbone=shared_embedding"],
    "mmoe": ["model.name=multitask", "model.backbone=mmoe"],
    "ple": ["model.name=multitask", "model.backbone=ple"],
    "aitm": ["model.name=aitm", "model.backbone=mmoe"],
    "adaftr_fixed_tau": ["model.name=adaftr", "loss.temperature_mode=fixed"],
    "adaftr_global_tau": ["model.name=adaftr", "loss.temperature_mode=global"],
    "adaftr": ["model.name=adaftr", "loss.temperature_mode=instance"],
    "adaftr_gradient_agreement": [
        "model.name=adaftr", "loss.relatedness_signal=gradient_agreement"],
    "adaftr_random_negative": ["model.name=adaftr",
                               "loss.negatives=random_one"],
    "adaftr_tower_input": ["model.name=adaftr",
                           "loss.relatedness_input=towers_detached"],
}


def test_the_registry_holds_the_benchmarked_methods_in_order():
  assert experiments.method_names() == list(DEFINITIONS)


@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_each_method_is_its_definition_on_any_preset(name):
  for preset in ("bench", "tiny"):
    base = experiments.get_preset(preset)
    assert (experiments.method_config(name, base, tuned=False)
            == overrides.apply(base, DEFINITIONS[name]))


@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_tuned_knobs_come_first_and_the_definition_wins(name):
  base = experiments.get_preset("bench")
  knobs = experiments.tuned_overrides(name)
  expected = overrides.apply(base, knobs + DEFINITIONS[name]).validate()
  assert experiments.method_config(name, base) == expected


def test_adaftr_ablations_start_from_adaftr_winner():
  winner = experiments.tuned_overrides("adaftr")
  assert winner and "loss.tau_min=0.02" in winner
  for name in experiments.method_names():
    if name.startswith("adaftr"):
      assert experiments.tuned_overrides(name) == winner
  assert experiments.tuned_overrides("esmm") == []


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
