"""Tests of adaftr_tf/experiments/methods.py: the core benchmarked methods."""

import json

import pytest

from adaftr_tf import config as C
from adaftr_tf import experiments
from adaftr_tf import overrides


# The methods as the benchmark defined them before the registry (override
# strings): the registry must give the same configs. The AdaFTR methods are
# the paper reading (InfoNCE trains the relatedness network, in-batch
# negatives), whatever the library's defaults.
PAPER = ["model.name=adaftr", "loss.relatedness_signal=contrastive",
         "loss.negatives=in_batch"]
DEFINITIONS = {
    "single_task": ["model.name=multitask", "model.backbone=single_task"],
    "shared_bottom": ["model.name=multitask", "model.backbone=shared_bottom"],
    "esmm": ["model.name=multitask", "model.backbone=shared_embedding"],
    "mmoe": ["model.name=multitask", "model.backbone=mmoe"],
    "ple": ["model.name=multitask", "model.backbone=ple"],
    "aitm": ["model.name=aitm", "model.backbone=mmoe"],
    "adaftr_fixed_tau": PAPER + ["loss.temperature_mode=fixed"],
    "adaftr_global_tau": PAPER + ["loss.temperature_mode=global"],
    "adaftr": PAPER + ["loss.temperature_mode=instance"],
    "adaftr_gradient_agreement": PAPER + [
        "loss.relatedness_signal=gradient_agreement"],
    "adaftr_random_negative": PAPER + ["loss.negatives=random_one"],
    "adaftr_tower_input": PAPER + ["loss.relatedness_input=towers_detached"],
}


def test_the_core_group_holds_the_benchmarked_methods_in_order():
  assert experiments.group_members("core") == list(DEFINITIONS)


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
  for name in experiments.group_members("core"):
    if name.startswith("adaftr"):
      assert experiments.tuned_overrides(name) == winner
  assert experiments.tuned_overrides("esmm") == []
