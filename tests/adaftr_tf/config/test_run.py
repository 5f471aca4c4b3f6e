"""Tests of adaftr_tf/config/run.py: the whole config, its predicates, JSON."""

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


def test_default_config_validates():
  assert C.Config().validate() == C.Config()


def test_config_error_is_a_value_error():
  assert issubclass(C.ConfigError, ValueError)


def test_config_is_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    _default().train.batch_size = 3  # type: ignore[misc]


def test_sections_are_data_model_loss_train_runtime():
  assert [f.name for f in dataclasses.fields(C.Config)] == [
      "data", "model", "loss", "train", "runtime"]


@pytest.mark.parametrize("section, expected", [
    (C.DataConfig, "source"), (C.ModelConfig, "backbone"),
    (C.LossConfig, "tau_min"), (C.TrainConfig, "batch_size"),
    (C.RuntimeConfig, "strategy")])
def test_every_section_validates_itself(section, expected):
  assert expected in {f.name for f in dataclasses.fields(section)}
  section().validate()   # the defaults of each section are valid


@pytest.mark.parametrize("items, pattern", [
    (["train.batch_size=1"], r"train\.batch_size=1: in-batch negatives need a "
     "batch of at least 2"),
    (["train.batch_size=0"], r"train\.batch_size=0 must be > 0"),
    (["train.learning_rate=-0.1"], r"train\.learning_rate=-0\.1 must be > 0"),
    (["train.learning_rate=0"], r"train\.learning_rate=0\.0 must be > 0"),
    (["train.learning_rate=inf"], r"train\.learning_rate=inf must be > 0"),
    (["train.learning_rate=nan"], r"train\.learning_rate=nan must be > 0"),
    (["model.dropout=1.0"], r"model\.dropout=1\.0 must lie in \[0, 1\)"),
    (["model.name=aitm", "model.click_gate=true"], r"model\.click_gate=true "
     r"needs the ESMM heads.*choose model\.name=multitask or adaftr"),
    (["loss.oracle_noise=1.5"], r"loss\.oracle_noise=1\.5 must lie in "
     r"\[0, 1\]"),
    (["loss.gate_quantile=0.5"], r"loss\.gate_quantile=0\.5 must lie in "
     r"\[0, 0\.5\)"),
    (["loss.gate_quantile=-0.1"], r"loss\.gate_quantile=-0\.1 must lie in "),
    (["loss.relatedness_signal=contrastive", "loss.tau_source=teacher",
      "loss.teacher_dir=runs/gate", "loss.teacher_field_share=1.0"],
     r"loss\.teacher_field_share=1\.0 must lie in \[0, 1\)"),
    (["loss.teacher_field_share=0.03"], r"loss\.teacher_field_share=0\.03 is "
     r"read only with loss\.tau_source=teacher \(got network\)"),
    (["model.relatedness_units=()", "loss.gate_field_share=1.0"],
     r"loss\.gate_field_share=1\.0 must lie in \[0, 1\)"),
    (["loss.relatedness_signal=contrastive", "loss.gate_field_share=0.03"],
     r"loss\.gate_field_share=0\.03 is read only with "
     r"loss\.relatedness_signal=transfer_gate \(got contrastive\)"),
    (["loss.gate_field_share=0.03"], r"loss\.gate_field_share=0\.03 reads a "
     r"linear transfer gate: set model\.relatedness_units=\(\) \(got \(32,\)\)"),
    (["model.embedding_l2=-1"], r"model\.embedding_l2=-1\.0 must be >= 0"),
    (["model.expert_units=()"], r"model\.expert_units=\(\) must be a non-empty"),
    (["model.tower_units=(8,0)"], r"model\.tower_units=\(8, 0\) must be"),
    (["model.projection_dim=0"], r"model\.projection_dim=0 must be > 0"),
    (["model.relatedness_units=(8,-1)"], r"model\.relatedness_units=\(8, -1\) "
     "must be a tuple of positive ints"),
    (["data.synthetic.click_rate=1.0"], r"data\.synthetic\.click_rate=1\.0 must "
     r"lie in \(0, 1\)"),
    (["data.synthetic.num_train=0"], r"data\.synthetic\.num_train=0 must be > 0"),
    (["data.synthetic.num_categorical=0", "data.synthetic.num_numerical=0"],
     "at least one categorical or numerical field"),
    (["train.epochs=0"], r"train\.epochs=0 must be > 0"),
    (["train.steps_per_epoch=0"], r"train\.steps_per_epoch=0 must be > 0"),
    (["train.early_stopping_patience=-1"], r"early_stopping_patience=-1 must be "
     ">= 0"),
    (["runtime.ps_min_shard_bytes=0"], r"runtime\.ps_min_shard_bytes=0 must be "
     "> 0"),
    (["runtime.strategy=parameter_server",
      "runtime.mixed_precision=mixed_float16"], "needs loss scaling"),
    (["runtime.strategy=parameter_server", "runtime.deterministic=true"],
     "cannot hold under runtime.strategy=parameter_server"),
    (["data.service=localhost"], r"data\.service='localhost' must look like "
     "grpc://HOST:PORT or HOST:PORT"),
    (["data.service=localhost:5050", "runtime.strategy=parameter_server"],
     r"data\.service with runtime\.strategy=parameter_server: .*coordinated "
     "reads.*use the default or mirrored strategy"),
    (["data.service=grpc://h:1", "runtime.strategy=multi_worker_mirrored"],
     r"data\.service with runtime\.strategy=multi_worker_mirrored"),
])
def test_contradictory_or_out_of_range_settings(items, pattern):
  _invalid(items, pattern)


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_a_data_service_is_fine_with_one_input_pipeline(strategy):
  overrides.apply(_default(), ["data.service=localhost:5050",
                               f"runtime.strategy={strategy}"]).validate()


def test_batch_size_one_is_fine_without_the_alignment():
  overrides.apply(_default(), ["train.batch_size=1",
                               "model.name=multitask"]).validate()
  overrides.apply(_default(), ["train.batch_size=1",
                               "loss.contrastive_weight=0"]).validate()


@pytest.mark.parametrize("key, value, choice", [
    ("model.name", "esmm", choices.ModelName),
    ("model.backbone", "transformer", choices.Backbone),
    ("train.optimizer", "sgd", choices.Optimizer),
    ("loss.temperature_mode", "learned", choices.TemperatureMode),
    ("loss.relatedness_input", "towers", choices.RelatednessInput),
    ("loss.negatives", "hard", choices.Negatives),
    ("train.checkpoint_metric", "val_auc", choices.CheckpointMetric),
    ("data.source", "bigquery", choices.DataSource),
    ("runtime.strategy", "tpu", choices.Strategy),
])
def test_a_choice_set_directly_is_checked_by_validate(key, value, choice):
  section, field = key.split(".")
  config = dataclasses.replace(_default(), **{section: dataclasses.replace(
      getattr(_default(), section), **{field: value})})
  with pytest.raises(C.ConfigError, match=re.escape(
      f"{key}={value!r} is not valid")) as info:
    config.validate()
  assert str(choices.options(choice)) in str(info.value)


@pytest.mark.parametrize("items, uses_alignment, uses_transfer", [
    ([], True, False),
    (["loss.contrastive_weight=0"], False, False),
    (["model.name=multitask"], False, False),
    (["model.name=aitm"], False, True),
])
def test_method_predicates(items, uses_alignment, uses_transfer):
  config = overrides.apply(_default(), items)
  assert config.uses_alignment is uses_alignment
  assert config.uses_transfer is uses_transfer


# --------------------------------------------------------------- JSON

def test_json_round_trip_keeps_none_and_changed_values():
  config = overrides.apply(_default(), [
      "loss.fixed_tau=0.2", "loss.temperature_mode=fixed",
      "train.steps_per_epoch=7", "model.tower_units=(8, 4)"])
  restored = C.Config.from_json(config.to_json())
  assert restored == config
  assert restored.loss.fixed_tau == 0.2
  assert restored.train.steps_per_epoch == 7
  assert restored.model.tower_units == (8, 4)
  assert isinstance(restored.model.relatedness_units, tuple)
  default = C.Config.from_json(_default().to_json())
  assert default.loss.fixed_tau is None
  assert default.train.steps_per_epoch is None


def test_from_dict_unknown_top_level_key_lists_valid_keys():
  with pytest.raises(C.ConfigError, match=r"unknown config key\(s\) "
                     r"\['optim'\]") as info:
    C.Config.from_dict({"optim": {}})
  assert "['data', 'loss', 'model', 'runtime', 'train']" in str(info.value)


def test_from_dict_unknown_nested_key_has_full_path():
  with pytest.raises(C.ConfigError, match=r"\['loss\.tau'\]; valid keys under "
                     r"loss:") as info:
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
    ({"model": {"name": 3}}, r"model\.name=3 is not valid; choose one of"),
    ({"model": {"expert_units": 3}}, r"model\.expert_units must be a list"),
    ({"loss": {"tau_min": True}}, r"loss\.tau_min must be a number"),
])
def test_from_dict_wrong_types(data, pattern):
  with pytest.raises(C.ConfigError, match=pattern):
    C.Config.from_dict(data)


def test_from_dict_accepts_integral_float_for_int_and_int_for_float():
  config = C.Config.from_dict({"train": {"batch_size": 64.0,
                                         "learning_rate": 1}})
  assert config.train.batch_size == 64 and type(config.train.batch_size) is int
  assert type(config.train.learning_rate) is float


@pytest.mark.parametrize("source, needs", [
    ("network", False), ("oracle", True), ("anti_oracle", True),
    ("shuffled_oracle", True), ("field_hash", False)])
def test_needs_oracle(source, needs):
  config = overrides.apply(_default(), ["loss.relatedness_signal=contrastive",
                                        f"loss.tau_source={source}"])
  assert config.validate().needs_oracle is needs
  assert overrides.apply(config, ["model.name=multitask"]).needs_oracle is False


def test_needs_teacher():
  config = overrides.apply(_default(), ["loss.relatedness_signal=contrastive",
                                        "loss.tau_source=teacher",
                                        "loss.teacher_dir=runs/gate"])
  assert config.validate().needs_teacher and not config.needs_oracle
  assert overrides.apply(config, ["model.name=multitask"]).needs_teacher is False
  assert _default().needs_teacher is False


def test_several_teachers_are_listed_and_train_folds_refuse_xla():
  """loss.teacher_dir lists several teachers (comma-separated); the row
  folds of train.folds do not compile under XLA."""
  student = overrides.apply(_default(), [
      "loss.relatedness_signal=contrastive", "loss.tau_source=teacher",
      "loss.teacher_dir=runs/fold0, runs/fold1"])
  assert student.validate().loss.teacher_dirs == ("runs/fold0", "runs/fold1")
  assert overrides.apply(student, ["loss.teacher_dir=runs/one"]
                         ).loss.teacher_dirs == ("runs/one",)
  # Several teachers compile unless cross-fitted, which only their saved
  # configs tell (pipelines/training/teacher.py refuses that before training).
  overrides.apply(student, ["runtime.jit_compile=true"]).validate()
  with pytest.raises(C.ConfigError, match=r"runtime\.jit_compile=true "
                     r"cannot compile the row folds of train\.folds.*set "
                     r"runtime\.jit_compile=false"):
    overrides.apply(_default(), ["train.folds=2", "train.holdout_fold=0",
                                 "runtime.jit_compile=true"]).validate()
