"""Tests of pipelines/benchmarks/speed/prototypes.py: each measurement variant
computes the library's loss with another part."""

import pytest
import tf_keras

from adaftr_tf import tasks
from pipelines.benchmarks.speed import prototypes


def test_prototypes_swap_only_their_part_and_keep_the_loss(tiny_data):
  """Each measurement variant computes the library's loss with another part."""
  from adaftr_tf import experiments
  from adaftr_tf import features as F
  from pipelines.data import reader
  config = experiments.config_of("tiny")
  schema = F.FeatureSchema.load(tiny_data)
  batch = next(iter(reader.make_dataset(tiny_data, "train", schema, 64,
                                        training=False)))

  def loss_of(names):
    tf_keras.utils.set_random_seed(1)
    model = prototypes.build_model(config, schema, names)
    return model, float(model.compute_loss(batch, training=False))

  library, expected = loss_of([])
  for names in (["keras_auc"], ["no_metrics"], ["unfused_info_nce"],
                ["uncompiled_info_nce"], ["keras_auc", "unfused_info_nce"],
                ["einsum_experts"], ["wide_experts"],
                ["no_metrics", "wide_experts"]):
    model, loss = loss_of(names)
    assert loss == pytest.approx(expected, rel=1e-5), names
  keras_auc, _ = loss_of(["keras_auc"])
  aucs = [m for m in keras_auc.metrics if m.name == "ctr_auc"]
  assert [type(m) for m in aucs] == [tf_keras.metrics.AUC]
  assert type(library.alignment_task.contrastive) is tasks.ContrastiveTask
  unfused, _ = loss_of(["unfused_info_nce"])
  assert isinstance(unfused.alignment_task.contrastive,
                    prototypes.UnfusedContrastive)
  silent, _ = loss_of(["no_metrics"])
  assert all(float(m.result()) == 0 for m in silent.metrics
             if m.name.endswith("_auc"))
  wide, _ = loss_of(["wide_experts"])
  assert isinstance(wide.backbone, prototypes.WideMMoE)
  assert (sorted(v.name for v in wide.backbone.weights)
          == sorted(v.name for v in library.backbone.weights))
  with pytest.raises(ValueError, match="replace the same part twice"):
    prototypes.check(["keras_auc", "no_metrics"])
  with pytest.raises(ValueError, match="replace the same part twice"):
    prototypes.check(["einsum_experts", "wide_experts"])


@pytest.mark.parametrize("name", ["einsum_experts", "wide_experts"])
def test_expert_prototypes_equal_the_library_mmoe(name):
  """Outputs, gates and gradients on the same weights, dropout off."""
  import numpy as np
  import tensorflow as tf
  from adaftr_tf.layers import MMoE
  x = tf.constant(np.random.default_rng(0).normal(size=(32, 20)), tf.float32)
  library = MMoE(3, (16, 8), num_tasks=2, seed=4, name="mmoe")
  prototype = prototypes._BACKBONES[name].from_config(library.get_config())

  def run(layer):
    variables = sorted(layer.trainable_variables, key=lambda v: v.name)
    with tf.GradientTape() as tape:
      outputs, gates = layer(x, return_gates=True)
      loss = tf.add_n([tf.reduce_sum(o * o) for o in outputs])
    return outputs + gates + tape.gradient(loss, variables)

  expected = run(library)
  prototype(x)
  values = {v.name: v for v in library.weights}
  for variable in prototype.weights:   # created in another order
    variable.assign(values[variable.name])
  for a, b in zip(run(prototype), expected):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_models_are_built_under_the_configured_precision(tiny_data):
  from adaftr_tf import experiments
  from adaftr_tf import features as F
  config = experiments.config_of(
      "tiny", ["runtime.mixed_precision=mixed_bfloat16"])
  schema = F.FeatureSchema.load(tiny_data)
  model = prototypes.build_model(config, schema, ["einsum_experts"])
  assert model.backbone.compute_dtype == "bfloat16"
  assert tf_keras.mixed_precision.global_policy().name == "float32"
  with pytest.raises(ValueError, match="replace MMoE.*SharedBottom"):
    prototypes.build_model(experiments.config_of(
        "tiny", ["model.backbone=shared_bottom"]), schema, ["wide_experts"])
