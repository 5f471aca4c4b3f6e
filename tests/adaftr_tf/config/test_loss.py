"""Tests of adaftr_tf/config/loss.py: the loss section's validation."""

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


@pytest.mark.parametrize("items, pattern", [
    (["loss.tau_min=0.5", "loss.tau_max=0.5"],
     r"loss\.tau_min=0\.5 must be < loss\.tau_max=0\.5"),
    (["loss.tau_min=2.0", "loss.tau_max=1.0"], r"loss\.tau_min=2\.0 must be <"),
    (["loss.tau_min=0"], r"loss\.tau_min=0\.0 must be > 0"),
    (["loss.fixed_tau=2.0"],
     r"loss\.fixed_tau=2\.0 must lie in \[tau_min, tau_max\] = \[0\.05, 1\.0\]"),
    (["loss.fixed_tau=0.01"], r"loss\.fixed_tau=0\.01 must lie in"),
    (["loss.contrastive_weight=-0.5"], r"loss\.contrastive_weight=-0\.5 must be "
     ">= 0"),
    (["loss.aitm_calibration_weight=-1"], r"loss\.aitm_calibration_weight=-1\.0 "
     "must be >= 0"),
    (["loss.relatedness_signal=gradient_agreement",
      "loss.temperature_mode=global"], "needs loss.temperature_mode=instance"),
    (["loss.relatedness_signal=fixed"], "needs loss.temperature_mode=fixed"),
    (["loss.agreement_representation=experts",
      "model.backbone=shared_embedding"], "needs shared experts"),
    (["loss.relatedness_signal=contrastive", "loss.tau_source=teacher"],
     r"loss\.tau_source=teacher needs loss\.teacher_dir"),
    (["loss.teacher_dir=runs/gate"],
     r"loss\.teacher_dir='runs/gate' is read only with loss\.tau_source="
     r"teacher \(got network\)"),
])
def test_out_of_range_or_contradictory_loss_settings(items, pattern):
  _invalid(items, pattern)


def test_fixed_tau_on_the_bounds_is_valid():
  for tau in ("0.05", "1.0"):
    overrides.apply(_default(), [f"loss.fixed_tau={tau}"]).validate()


@pytest.mark.parametrize("items, message", [
    (["loss.agreement_representation=experts",
      "model.backbone=shared_embedding"], "needs shared experts"),
    (["loss.agreement_representation=experts", "model.backbone=ple",
      "model.ple_shared_experts=0"], "needs shared experts"),
    (["loss.relatedness_signal=gradient_agreement",
      "loss.temperature_mode=global"], "needs loss.temperature_mode=instance"),
    (["loss.relatedness_signal=fixed"], "needs loss.temperature_mode=fixed"),
    (["loss.relatedness_signal=meta_gradient",
      "loss.temperature_mode=global"], "needs loss.temperature_mode=instance"),
    (["loss.relatedness_signal=meta_gradient",
      "loss.relatedness_stop_gradient=false"],
     "meta_gradient trains the relatedness network alone: it needs "
     "loss.relatedness_stop_gradient=true"),
    (["loss.meta_gradient_every=0"],
     r"loss\.meta_gradient_every=0 must be > 0"),
    (["loss.alignment_start=1.0"],
     r"loss\.alignment_start=1\.0 must lie in \[0, 1\)"),
    (["loss.alignment_start=-0.1"],
     r"loss\.alignment_start=-0\.1 must lie in \[0, 1\)"),
    (["loss.relatedness_signal=meta_gradient", "loss.tau_source=oracle"],
     "loss.tau_source=oracle sets tau per instance without the relatedness "
     "network"),
])
def test_contradictory_signal_and_mode_are_rejected(items, message):
  config = overrides.apply(experiments.get_preset("tiny"), items)
  with pytest.raises(ValueError, match=message):
    config.validate()


def test_an_unknown_signal_is_refused_naming_the_signals():
  with pytest.raises(C.ConfigError, match=(
      r"loss\.relatedness_signal='meta_grad' is not valid; choose one of "
      r"\(.*'transfer_gate', 'meta_gradient'\)")):
    overrides.apply(_default(), ["loss.relatedness_signal=meta_grad"])


@pytest.mark.parametrize("items", [
    ["loss.tau_source=oracle", "loss.temperature_mode=global"],
    ["loss.tau_source=field_hash", "loss.relatedness_signal=gradient_agreement"],
])
def test_a_control_tau_source_refuses_a_relatedness_network_setting(items):
  _invalid(items, r"loss\.tau_source=\w+ sets tau per instance without the "
           "relatedness network")
