"""Tests of pipelines/benchmarks/speed/paired.py: the untrained gate teacher
that the paired row's teacher entries read."""

import numpy as np
import pytest

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf import overrides
from pipelines.benchmarks.speed import paired
from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher as teacher_lib
from tests.helpers.data import synthetic_batch


@pytest.mark.parametrize("backbone", ["shared_embedding", "mmoe"])
def test_the_untrained_teacher_is_the_registrys_gate_teacher(backbone,
                                                            tmp_path):
  """The written model dir holds the registry's teacher of the backbone; a
  student of the paired entry accepts it, attaches it and reads its tau."""
  base = experiments.config_of("tiny", plan_lib.ADAFTR + [
      f"model.backbone={backbone}"])
  student = overrides.apply(base, plan_lib.PAIRED["gate_teacher"][0])
  (features, labels), schema = synthetic_batch(student, 32)
  paired.write_untrained_teacher(student, schema, str(tmp_path))
  name = {"shared_embedding": "esmm", "mmoe": "mmoe"}[backbone]
  written = model_dir_lib.read_config(str(tmp_path))
  assert written == experiments.method_config(
      f"adaftr_{name}_transfer_gate_linear_quantile_0.25", base,
      tuned=False)
  assert written.model.backbone == backbone
  student = overrides.apply(student, [f"loss.teacher_dir={tmp_path}"])
  teacher_lib.check(student, schema)
  model = models.build_model(student, schema)
  teacher_lib.attach(model, student)
  x, _ = model._embed(features)
  outputs = model._predict(x, None, False)
  _, extra = model.alignment_task(x, outputs, labels, training=False,
                                  features=features)
  teacher, _, _ = model_dir_lib.load_trained(str(tmp_path))
  np.testing.assert_allclose(
      extra[F.TAU].numpy(),
      np.clip(teacher.instance_tau(features).numpy(),
              *model.alignment_task.tau_bounds), rtol=1e-6)


def test_a_backbone_without_a_gate_teacher_is_named(tmp_path):
  config = experiments.config_of("tiny", plan_lib.ADAFTR + [
      "model.backbone=single_task"])
  (_, _), schema = synthetic_batch(config, 8)
  with pytest.raises(ValueError, match="model.backbone=single_task.*valid"):
    paired.write_untrained_teacher(config, schema, str(tmp_path))
