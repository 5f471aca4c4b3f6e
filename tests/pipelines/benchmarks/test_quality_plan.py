"""Tests of pipelines/benchmarks/quality_plan.py: the methods selected and
each run's config, seed and teachers."""

import pytest

from adaftr_tf import experiments
from pipelines.benchmarks import quality_plan


def test_unknown_method_is_rejected():
  with pytest.raises(ValueError, match="unknown method.*nope.*valid"):
    quality_plan.select_methods("mmoe,nope")
  assert quality_plan.select_methods("") == experiments.group_members("core")


def test_methods_and_groups_are_selected_in_order_once():
  assert quality_plan.select_methods("@ladder_esmm,esmm,mmoe") == (
      experiments.group_members("ladder_esmm") + ["mmoe"])
  with pytest.raises(ValueError, match="unknown method group 'nope'"):
    quality_plan.select_methods("@nope")


def test_a_student_brings_its_teacher_and_reads_the_same_seeds_run(tmp_path):
  """select_methods puts a method's teacher just before it; plan_runs points
  each seed's student at the teacher's run of that seed (absolute path)."""
  teacher = "adaftr_esmm_transfer_gate_linear_quantile_0.25"
  methods = quality_plan.select_methods("esmm,adaftr_esmm_gate_teacher")
  assert methods == ["esmm", teacher, "adaftr_esmm_gate_teacher"]
  assert quality_plan.select_methods(f"{teacher},adaftr_esmm_gate_teacher,"
                                     f"{teacher}") == methods[1:]
  base = experiments.get_preset("tiny")
  out = str(tmp_path / "bench")
  plan = quality_plan.plan_runs(base, methods, 2, out)
  students = [(seed, config) for method, seed, config in plan
              if method == "adaftr_esmm_gate_teacher"]
  assert [seed for seed, _ in students] == [0, 1]
  for seed, config in students:
    assert config.loss.teacher_dir == str(
        tmp_path / "bench" / "runs" / f"{teacher}-seed{seed}")
    assert config.train.seed == base.train.seed + seed
  with pytest.raises(ValueError, match="needs its teacher adaftr_esmm_transfer"
                     "_gate_linear_quantile_0.25 benchmarked before it"):
    quality_plan.plan_runs(base, ["adaftr_esmm_gate_teacher"], 1, out)


def test_a_cross_fitted_student_reads_every_folds_teacher(tmp_path):
  """The K fold teachers come before the student, in fold order; each seed's
  student lists their runs of that seed in loss.teacher_dir."""
  teachers = [f"adaftr_mmoe_transfer_gate_linear_quantile_0.25_fold{k}of3"
              for k in range(3)]
  methods = quality_plan.select_methods("adaftr_mmoe_gate_teacher_crossfit_3")
  assert methods == teachers + ["adaftr_mmoe_gate_teacher_crossfit_3"]
  out = str(tmp_path / "bench")
  plan = quality_plan.plan_runs(experiments.get_preset("tiny"), methods, 2, out)
  for method, seed, config in plan:
    if method in teachers:
      assert (config.train.folds, config.train.holdout_fold) == (
          3, teachers.index(method))
    else:
      assert config.loss.teacher_dirs == tuple(
          str(tmp_path / "bench" / "runs" / f"{t}-seed{seed}")
          for t in teachers)
      assert config.train.folds == 0
  with pytest.raises(ValueError, match="needs its teacher .*_fold2of3 "
                     "benchmarked before it"):
    quality_plan.plan_runs(experiments.get_preset("tiny"),
                           methods[:2] + methods[3:], 1, out)


def test_an_ensemble_student_reads_its_teachers_runs_of_the_next_seeds(
    tmp_path):
  """Method.teacher_seeds=3: seed k reads the teacher's runs of seeds k,
  k+1, k+2 modulo the number of seeds; fewer seeds than that is refused."""
  teacher = "adaftr_esmm_transfer_gate_linear_quantile_0.25"
  methods = quality_plan.select_methods("adaftr_esmm_gate_teacher_ensemble_3")
  assert methods == [teacher, "adaftr_esmm_gate_teacher_ensemble_3"]
  out = str(tmp_path / "bench")
  plan = quality_plan.plan_runs(experiments.get_preset("tiny"), methods, 4,
                                out)
  assert [(m, s) for m, s, _ in plan][:4] == [(teacher, s) for s in range(4)]
  for method, seed, config in plan[4:]:
    assert config.loss.teacher_dirs == tuple(
        str(tmp_path / "bench" / "runs" / f"{teacher}-seed{s}")
        for s in [(seed + j) % 4 for j in range(3)])
  assert plan[-1][2].loss.teacher_dirs[1:] == tuple(   # seed 3: 3, 0, 1
      str(tmp_path / "bench" / "runs" / f"{teacher}-seed{s}") for s in (0, 1))
  with pytest.raises(ValueError, match="method adaftr_esmm_gate_teacher_"
                     "ensemble_3 reads its teachers' runs of 3 seeds: run at "
                     "least --seeds=3"):
    quality_plan.plan_runs(experiments.get_preset("tiny"), methods, 2, out)
