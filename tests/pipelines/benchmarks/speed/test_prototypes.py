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
                ["uncompiled_info_nce"], ["keras_auc", "unfused_info_nce"]):
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
  with pytest.raises(ValueError, match="replace the same part twice"):
    prototypes.check(["keras_auc", "no_metrics"])
