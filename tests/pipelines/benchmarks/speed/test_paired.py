"""Tests of pipelines/benchmarks/speed/paired.py: the untrained teachers
(the gate teacher, the cross-fitted fold teachers) that the paired row's
teacher entries read."""

import os

import numpy as np
import pytest

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import folds as folds_lib
from adaftr_tf import models
from adaftr_tf import overrides
from pipelines.benchmarks.speed import paired
from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher as teacher_lib
from tests.helpers.data import synthetic_batch


@pytest.mark.parametrize("backbone, entry", [
    ("shared_embedding", "gate_teacher"), ("mmoe", "gate_teacher"),
    ("shared_embedding", "gate_teacher_pruned_random_one")])
def test_the_untrained_teacher_is_the_registrys_gate_teacher(backbone, entry,
                                                            tmp_path):
  """The written model dir holds the registry's teacher of the backbone; a
  student of the paired entry accepts it, attaches it and reads its tau
  (the pruned entry: through the fields above its share)."""
  base = experiments.config_of("tiny", plan_lib.ADAFTR + [
      f"model.backbone={backbone}"])
  student = overrides.apply(base, plan_lib.PAIRED[entry][0])
  (features, labels), schema = synthetic_batch(student, 32)
  teacher_dir = paired.write_untrained_teachers(student, schema,
                                                str(tmp_path))
  assert teacher_dir == str(tmp_path / "teacher0")
  name = {"shared_embedding": "esmm", "mmoe": "mmoe"}[backbone]
  written = model_dir_lib.read_config(teacher_dir)
  assert written == experiments.method_config(
      f"adaftr_{name}_transfer_gate_linear_quantile_0.25", base,
      tuned=False)
  assert written.model.backbone == backbone
  student = overrides.apply(student, [f"loss.teacher_dir={teacher_dir}"])
  teacher_lib.check(student, schema)
  model = models.build_model(student, schema)
  teacher_lib.attach(model, student)
  x, _ = model._embed(features)
  outputs = model._predict(x, None, False)
  _, extra = model.alignment_task(x, outputs, labels, training=False,
                                  features=features)
  teacher, _, _ = model_dir_lib.load_trained(teacher_dir)
  np.testing.assert_allclose(
      extra[F.TAU].numpy(),
      np.clip(teacher.instance_tau(
          features, student.loss.teacher_field_share).numpy(),
              *model.alignment_task.tau_bounds), rtol=1e-6)


@pytest.mark.parametrize("entry", ["gate_teacher_crossfit_2",
                                   "gate_teacher_crossfit_2_random_one"])
def test_the_untrained_cross_fitted_teachers_are_the_registrys(entry,
                                                               tmp_path):
  """The cross-fitted entries write the registry's two fold teachers of the
  ESMM student, in fold order; in training each row reads the tau of the
  teacher that holds its fold out (folds.row_fold), in evaluation the mean."""
  base = experiments.config_of("tiny", plan_lib.ADAFTR + [
      "model.backbone=shared_embedding"])
  student = overrides.apply(base, plan_lib.PAIRED[entry][0])
  (features, labels), schema = synthetic_batch(student, 64)
  teacher_dir = paired.write_untrained_teachers(student, schema,
                                                str(tmp_path))
  dirs = teacher_dir.split(",")
  assert dirs == [str(tmp_path / "teacher0"), str(tmp_path / "teacher1")]
  for fold, directory in enumerate(dirs):
    assert model_dir_lib.read_config(directory) == experiments.method_config(
        f"adaftr_esmm_transfer_gate_linear_quantile_0.25_fold{fold}of2", base,
        tuned=False)
  # Untrained teachers share their initial weights: give teacher 1 others,
  # so that which teacher a row reads shows.
  other, _, _ = model_dir_lib.load_trained(dirs[1])
  rng = np.random.default_rng(0)
  for variable in other.trainable_variables:
    variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  other.save_weights(os.path.join(dirs[1], model_dir_lib.BEST_WEIGHTS))
  student = overrides.apply(student, [f"loss.teacher_dir={teacher_dir}"])
  _, cross_fitted = teacher_lib.check_dirs(student.loss.teacher_dirs, schema)
  assert cross_fitted
  model = models.build_model(student, schema)
  teacher_lib.attach(model, student)
  x, _ = model._embed(features)
  taus = np.stack([model_dir_lib.load_trained(d)[0].instance_tau(
      features).numpy() for d in dirs], axis=1)            # [64, 2]
  taus = np.clip(taus, *model.alignment_task.tau_bounds)
  fold = folds_lib.row_fold(features, 2).numpy()
  assert 0 < fold.sum() < len(fold)     # both folds occur in the batch
  assert not np.allclose(taus[:, 0], taus[:, 1])   # the teachers differ
  for training, expected in ((True, taus[np.arange(len(fold)), fold]),
                             (False, taus.mean(axis=1))):
    outputs = model._predict(x, None, training)
    _, extra = model.alignment_task(x, outputs, labels, training=training,
                                    features=features)
    np.testing.assert_allclose(extra[F.TAU].numpy(), expected, rtol=1e-5)


def test_a_backbone_without_a_gate_teacher_is_named(tmp_path):
  config = experiments.config_of("tiny", plan_lib.ADAFTR + [
      "model.backbone=single_task"] + plan_lib.GATE_TEACHER)
  (_, _), schema = synthetic_batch(config, 8)
  with pytest.raises(ValueError, match="model.backbone=single_task.*valid"):
    paired.write_untrained_teachers(config, schema, str(tmp_path))
