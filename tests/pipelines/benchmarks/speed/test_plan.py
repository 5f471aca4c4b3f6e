"""Tests of pipelines/benchmarks/speed/plan.py: rows, step rounding, flags."""

import pytest

from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.benchmarks.speed import prototypes
from tests.helpers.benchmarks import speed_settings


def test_plan_rows_and_step_rounding():
  s = speed_settings()
  dirs = {"rows": "R", "blocks": "D"}
  rows = {r.key: r for r in plan_lib.core_rows(s, dirs)
          + plan_lib.extra_rows(s, "D") + plan_lib.scale_rows(s, {10: "S"})}
  assert list(rows) == [
      "input/rows", "input/blocks", "real/adaftr", "real_rows/adaftr",
      "real/no_cl", "real_cached/adaftr",
      "reference/adaftr", "reference/no_cl", "variant/spe1", "variant/jit", "prototype/keras_auc",
      "prototype/no_metrics", "prototype/reference_no_metrics",
      "scale/10/adam", "scale/10/lazy_adam", "scale/10/adagrad"]
  fit = rows["real/adaftr"].spec
  assert (fit["steps"], fit["warmup"]) == (8, 4)   # whole executions of 4
  cached = rows["real_cached/adaftr"].spec
  assert (cached["phase"], cached["steps"], cached["warmup"]) == (
      "fit_cached", 8, 4)
  assert fit["overrides"] == ["train.batch_size=2048"] + plan_lib.ADAFTR
  assert "loss.relatedness_signal=contrastive" in plan_lib.ADAFTR
  assert rows["real/no_cl"].spec["overrides"][-1] == "model.name=multitask"
  assert (rows["reference/adaftr"].spec["steps"],
          rows["input/rows"].spec["steps"]) == (5, 7)
  # Each layout's input and real rows read that layout's data; the rest
  # read the config's data.layout (blocks).
  assert [rows[k].spec["data_dir"] for k in (
      "input/rows", "input/blocks", "real/adaftr", "real_rows/adaftr",
      "reference/adaftr")] == ["R", "D", "D", "R", "D"]
  assert rows["real_rows/adaftr"].spec["overrides"] == fit["overrides"]
  other = plan_lib.core_rows(speed_settings(layout="rows"), dirs)
  assert [r.key for r in other][2:4] == ["real/adaftr", "real_blocks/adaftr"]
  assert other[2].spec["data_dir"] == "R"
  assert (rows["variant/spe1"].spec["steps"], rows["variant/spe1"].spec[
      "warmup"]) == (5, 3)
  assert rows["prototype/keras_auc"].spec["prototypes"] == ["keras_auc"]
  lazy = rows["scale/10/lazy_adam"].spec
  assert "train.optimizer=lazy_adam" in lazy["overrides"]
  assert lazy["prototypes"] == [] and lazy["data_dir"] == "S"
  assert (lazy["steps"], lazy["warmup"]) == (4, 2)


def test_flag_parsing_names_the_bad_value():
  assert plan_lib.parse_int_list("10_000, 5", "vocab_rows") == [10000, 5]
  assert plan_lib.parse_int_list("", "vocab_rows") == []
  with pytest.raises(ValueError, match="--vocab_rows"):
    plan_lib.parse_int_list("1e4", "vocab_rows")
  with pytest.raises(ValueError, match="must be >= 1"):
    plan_lib.parse_int_list("0", "vocab_rows")
  assert plan_lib.parse_names("all", ("a", "b"), "x") == ["a", "b"]
  with pytest.raises(ValueError, match="unknown.*nope.*valid"):
    plan_lib.parse_names("a,nope", ("a", "b"), "variants")
  core = plan_lib.core_rows(speed_settings(), {"rows": "R", "blocks": "D"})
  assert [r.key for r in plan_lib.select(core, "input/rows, reference/adaftr")
          ] == ["input/rows", "reference/adaftr"]
  assert plan_lib.select(core, "") == []
  with pytest.raises(ValueError, match="--rows: unknown.*'input'"):
    plan_lib.select(core, "input")
  with pytest.raises(ValueError, match="unknown prototype"):
    prototypes.check(["nope"])


@pytest.mark.parametrize("preset", ["demo", "large_experts"])
def test_every_paired_entry_is_a_valid_change_of_the_preset(preset):
  from adaftr_tf import experiments
  for name, (overrides, names) in plan_lib.PAIRED.items():
    config = experiments.config_of(preset, plan_lib.ADAFTR + overrides)
    assert prototypes.check(names) == names, name
    if "bfloat16" in name:
      assert config.runtime.mixed_precision == "mixed_bfloat16"
    assert (config.model.name == "multitask") == name.startswith("no_cl")
