"""Tests of adaftr_tf/experiments/relatedness.py: presets, AdaFTR(B) and its
control sources, groups."""

import dataclasses

import pytest

from adaftr_tf import config as C
from adaftr_tf import experiments
from adaftr_tf import overrides
from adaftr_tf.experiments import methods
from adaftr_tf.experiments import relatedness

# Back to the backbone: the model without the alignment and the paper
# reading's loss fields at the library's defaults.
TO_BACKBONE = ["model.name=multitask"] + [
    f"loss.{key}={getattr(C.LossConfig(), key)}"
    for key in methods.PAPER_READING]


def test_presets_have_million_row_evaluation_splits():
  bench = experiments.get_preset("bench")
  for name in ("relatedness", "bench_large"):
    config = experiments.get_preset(name)
    synthetic = config.data.synthetic
    assert (synthetic.num_valid, synthetic.num_test) == (1_000_000, 1_000_000)
    assert synthetic.seed == bench.data.synthetic.seed   # the same world
    assert config.model == bench.model and config.train == bench.train
  assert experiments.get_preset("relatedness").data.synthetic.num_train == (
      bench.data.synthetic.num_train)
  large = experiments.get_preset("bench_large").data.synthetic
  # >= 5,000 training conversions at the world's ~0.5% conversion rate.
  assert large.num_train * large.click_rate * large.cvr_rate >= 5_000


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
@pytest.mark.parametrize("source", ("network",) + relatedness.CONTROL_SOURCES)
def test_adaftr_on_a_backbone_differs_from_it_by_the_alignment_alone(
    base, source):
  name = f"adaftr_{base}" + ("" if source == "network" else f"_{source}")
  preset = experiments.get_preset("relatedness")
  config = experiments.method_config(name, preset)
  paired = experiments.method_config(base, preset)
  assert experiments.get_method(name).baseline == base
  assert config.model.name == "adaftr" and config.uses_alignment
  assert config.loss.tau_source == source
  assert config.needs_oracle == ("oracle" in source)
  # Everything else, tuned knobs included, is the baseline's.
  assert config.loss.relatedness_signal == "contrastive"   # the paper reading
  assert overrides.apply(config, TO_BACKBONE + ["loss.tau_source=network"]
                         ) == paired


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
@pytest.mark.parametrize("signal", relatedness.LEARNED_SIGNALS)
def test_a_learned_signal_on_a_backbone(base, signal):
  preset = experiments.get_preset("relatedness")
  config = experiments.method_config(f"adaftr_{base}_{signal}", preset)
  assert experiments.get_method(f"adaftr_{base}_{signal}").baseline == base
  assert config.loss.relatedness_signal == signal
  assert config.loss.tau_source == "network" and not config.needs_oracle
  assert config.loss.negatives == "in_batch"
  assert overrides.apply(config, TO_BACKBONE) == (
      experiments.method_config(base, preset))
  assert f"adaftr_{base}_{signal}" in experiments.group_members(
      f"ladder_{base}")


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
@pytest.mark.parametrize("variant, knob, reference", [
    ("embeddings", "loss.relatedness_stop_gradient=true", ""),
    ("delayed", "loss.alignment_start=0", ""),
    ("linear", "model.relatedness_units=(32,)", "_random_negative"),
    ("quantile_0.25", "loss.gate_quantile=0.05", "_random_negative"),
    ("quantile_0.4", "loss.gate_quantile=0.05", "_random_negative"),
    ("linear_quantile_0.25", "loss.gate_quantile=0.05", "_linear"),
    ("quantile_0.25_gate_first", "loss.alignment_start=0",
     "_quantile_0.25")])
def test_a_transfer_gate_variant_differs_from_the_gate_by_one_knob(
    base, variant, knob, reference):
  """`_embeddings`: the probe's gradient also reaches the shared embeddings;
  `_delayed`: the InfoNCE term starts at half the training steps;
  `_linear`: the default's form (one random negative) whose relatedness
  network has no hidden layer; `_quantile_<q>`: the default's form with a
  steeper map from slopes to tau, `_linear_quantile_0.25` the linear network
  with it, and `_quantile_0.25_gate_first` that map with the InfoNCE term
  off for the first GATE_FIRST of the steps."""
  preset = experiments.get_preset("relatedness")
  config = experiments.method_config(
      f"adaftr_{base}_transfer_gate{reference}", preset)
  changed = experiments.method_config(
      f"adaftr_{base}_transfer_gate_{variant}", preset)
  assert changed != config
  assert overrides.apply(changed, [knob]) == config


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
def test_click_gate_on_a_backbone_differs_from_it_by_the_gate_alone(base):
  preset = experiments.get_preset("relatedness")
  config = experiments.method_config(f"{base}_click_gate", preset)
  assert experiments.get_method(f"{base}_click_gate").baseline == base
  assert config.model.click_gate and not config.uses_alignment
  assert overrides.apply(config, ["model.click_gate=false"]) == (
      experiments.method_config(base, preset))


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
@pytest.mark.parametrize("form", list(relatedness.FORMS))
@pytest.mark.parametrize("tau, group", [("oracle", "forms"),
                                        ("transfer_gate", "gate_forms")])
def test_an_alignment_form_changes_its_tau_source_in_one_loss_knob(
    base, form, tau, group):
  """`adaftr_B_<tau>_<form>` (tau: the oracle or the transfer gate) differs
  from `adaftr_B_<tau>` in the form's loss knobs only."""
  preset = experiments.get_preset("relatedness")
  plain = experiments.method_config(f"adaftr_{base}_{tau}", preset)
  config = experiments.method_config(f"adaftr_{base}_{tau}_{form}", preset)
  changed = {k for k in dataclasses.asdict(config.loss)
             if getattr(config.loss, k) != getattr(plain.loss, k)}
  assert changed == set(relatedness.FORMS[form])
  assert config.model == plain.model and config.train == plain.train
  assert experiments.get_method(f"adaftr_{base}_{tau}_{form}").baseline == base
  assert config.needs_oracle == (tau == "oracle")
  assert f"adaftr_{base}_{tau}_{form}" in experiments.group_members(
      f"{group}_{base}")


@pytest.mark.parametrize("noise", relatedness.NOISE_LEVELS)
def test_a_noisy_oracle_is_the_oracle_with_a_mixed_in_hash(noise):
  preset = experiments.get_preset("relatedness")
  config = experiments.method_config(f"adaftr_esmm_noisy_oracle_{noise}",
                                     preset)
  assert config.loss.oracle_noise == noise and config.needs_oracle
  assert overrides.apply(config, [
      "loss.tau_source=oracle", "loss.oracle_noise=0.5"]) == (
          experiments.method_config("adaftr_esmm_oracle", preset))
  assert f"adaftr_esmm_noisy_oracle_{noise}" in experiments.group_members(
      "knowledge_esmm")


def test_groups():
  assert experiments.group_members("ladder_esmm") == [
      "esmm", "adaftr_esmm", "adaftr_esmm_oracle", "adaftr_esmm_anti_oracle",
      "adaftr_esmm_shuffled_oracle", "adaftr_esmm_field_hash",
      "adaftr_esmm_transfer_gate", "adaftr_esmm_meta_gradient"]
  assert experiments.group_members("plugin") == [
      "esmm", "adaftr_esmm", "shared_bottom", "adaftr_shared_bottom", "mmoe",
      "adaftr_mmoe", "ple", "adaftr_ple"]
  assert experiments.group_members("click_gate") == [
      "esmm", "esmm_click_gate", "shared_bottom", "shared_bottom_click_gate",
      "mmoe", "mmoe_click_gate", "ple", "ple_click_gate"]


def test_the_hashed_field_does_not_enter_the_planted_relatedness():
  from pipelines.data import synthetic
  config = experiments.get_preset("relatedness")
  related = synthetic.relatedness_fields(config.data.synthetic)
  assert related and config.loss.tau_field not in related


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
def test_a_gate_teacher_is_the_oracle_with_a_trained_gates_tau(base):
  """`adaftr_B_gate_teacher`: the oracle's form, tau from the teacher (the
  same seed's linear gate with the steeper map) instead of r."""
  preset = experiments.get_preset("relatedness")
  method = experiments.get_method(f"adaftr_{base}_gate_teacher")
  assert method.baseline == base
  assert method.teachers == (f"adaftr_{base}_transfer_gate_linear_quantile_"
                             f"{relatedness.STEEP_QUANTILE}",)
  config = experiments.method_config(method.name, preset)
  assert config.loss.tau_source == "teacher" and not config.needs_oracle
  assert overrides.apply(config, ["loss.tau_source=oracle"]) == (
      experiments.method_config(f"adaftr_{base}_oracle", preset))


@pytest.mark.parametrize("base", list(relatedness.BACKBONES))
def test_the_cheaper_gate_teacher_has_one_random_negative(base):
  preset = experiments.get_preset("relatedness")
  name = f"adaftr_{base}_gate_teacher"
  cheaper = experiments.get_method(f"{name}_random_negative")
  assert (cheaper.baseline, cheaper.teachers) == (
      base, experiments.get_method(name).teachers)
  config = experiments.method_config(cheaper.name, preset)
  assert config.loss.negatives == "random_one"
  assert overrides.apply(config, ["loss.negatives=in_batch"]) == (
      experiments.method_config(name, preset))


@pytest.mark.parametrize("student", ["gate_teacher", "gate_teacher_crossfit_2"])
def test_a_pruned_gate_teacher_reads_the_teachers_fields_above_a_share(
    student):
  """`adaftr_B_gate_teacher_pruned`, `..._crossfit_2_pruned`: their
  students with loss.teacher_field_share set, the same teachers."""
  preset = experiments.get_preset("relatedness")
  plain = experiments.get_method(f"adaftr_esmm_{student}")
  pruned = experiments.get_method(f"adaftr_esmm_{student}_pruned")
  assert (pruned.baseline, pruned.teachers) == ("esmm", plain.teachers)
  config = experiments.method_config(pruned.name, preset)
  assert config.loss.teacher_field_share == relatedness.PRUNED_FIELD_SHARE > 0
  assert overrides.apply(config, ["loss.teacher_field_share=0"]) == (
      experiments.method_config(plain.name, preset))
  teacher = experiments.method_config(plain.teachers[0], preset)
  assert teacher.model.relatedness_units == ()   # a linear gate
  if student == "gate_teacher":   # the cheaper step: one random negative
    cheaper = experiments.get_method(f"{pruned.name}_random_negative")
    assert cheaper.teachers == plain.teachers
    assert overrides.apply(experiments.method_config(cheaper.name, preset), [
        "loss.negatives=in_batch"]) == config


def test_a_pruned_gate_in_one_run_is_the_linear_gate_with_a_field_share():
  """`adaftr_B_transfer_gate_linear_quantile_0.25_pruned`: the linear gate
  of the same map with loss.gate_field_share set, no teacher."""
  preset = experiments.get_preset("relatedness")
  for base in relatedness.BACKBONES:
    plain = f"adaftr_{base}_transfer_gate_linear_quantile_0.25"
    pruned = experiments.get_method(f"{plain}_pruned")
    assert (pruned.baseline, pruned.teachers) == (base, ())
    config = experiments.method_config(pruned.name, preset)
    assert config.loss.gate_field_share == relatedness.PRUNED_FIELD_SHARE
    assert overrides.apply(config, ["loss.gate_field_share=0"]) == (
        experiments.method_config(plain, preset))


def test_an_ensemble_gate_teacher_reads_its_teacher_over_several_seeds():
  preset = experiments.get_preset("relatedness")
  gate = experiments.get_method("adaftr_esmm_gate_teacher")
  ensemble = experiments.get_method(
      f"adaftr_esmm_gate_teacher_ensemble_{relatedness.ENSEMBLE_SEEDS}")
  assert (ensemble.baseline, ensemble.teachers, ensemble.teacher_seeds) == (
      "esmm", gate.teachers, relatedness.ENSEMBLE_SEEDS)
  assert gate.teacher_seeds == 1
  assert experiments.method_config(ensemble.name, preset) == (
      experiments.method_config(gate.name, preset))


@pytest.mark.parametrize("folds", relatedness.CROSS_FIT_FOLDS)
def test_a_cross_fitted_gate_teacher_reads_one_held_out_teacher_per_fold(
    folds):
  """`adaftr_B_gate_teacher_crossfit_K` is the gate teacher with K teachers,
  the k-th the same linear gate trained without fold k."""
  preset = experiments.get_preset("relatedness")
  gate = experiments.get_method("adaftr_mmoe_gate_teacher")
  student = experiments.get_method(f"adaftr_mmoe_gate_teacher_crossfit_{folds}")
  assert student.teachers == tuple(f"{gate.teachers[0]}_fold{k}of{folds}"
                                   for k in range(folds))
  assert experiments.method_config(student.name, preset) == (
      experiments.method_config(gate.name, preset))
  for fold, name in enumerate(student.teachers):
    held = experiments.method_config(name, preset)
    assert (held.train.folds, held.train.holdout_fold) == (folds, fold)
    assert overrides.apply(held, ["train.folds=0", "train.holdout_fold=none"]
                           ) == experiments.method_config(gate.teachers[0],
                                                          preset)
  cheaper = experiments.get_method(f"{student.name}_random_negative")
  assert (cheaper.baseline, cheaper.teachers) == ("mmoe", student.teachers)
  assert overrides.apply(experiments.method_config(cheaper.name, preset),
                         ["loss.negatives=in_batch"]) == (
      experiments.method_config(student.name, preset))


def test_a_teacher_must_be_registered_before_its_student():
  with pytest.raises(ValueError, match="its teacher 'nope' must be "
                     "registered first"):
    experiments.method("x_student", "adaftr", teachers=["nope"])(lambda c: c)
  assert "x_student" not in experiments.method_names()
