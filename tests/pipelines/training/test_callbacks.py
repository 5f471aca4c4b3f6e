"""Tests of pipelines/training/callbacks.py: the relatedness diagnostics of a
real run and the non-finite guard stopping a training job."""

import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import models
from pipelines.training import callbacks as cb
from pipelines.training import resume
from pipelines.training import train_lib
from tests.helpers.data import tiny_config


# --- in a training job --------------------------------------------------------

def test_tensorboard_has_the_relatedness_diagnostics(tiny_run):
  folder = os.path.join(tiny_run["model_dir"], "tensorboard", "tau")
  tags = {}
  for name in os.listdir(folder):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(folder,
                                                                  name)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  for tag in ("tau", "predicted_relatedness", "agreement", "tau_mean",
              "predicted_relatedness_mean", "agreement_mean",
              "spearman_neg_tau_vs_r", "spearman_agreement_vs_r"):
    assert sorted(tags.get(tag, [])) == [0, 1], (tag, sorted(tags))


# --- a NaN loss in a training job ---------------------------------------------

def _tiny(*items):
  return tiny_config("train.steps_per_epoch=8", "train.steps_per_execution=2",
                     "train.checkpoint_every_steps=2", *items)


NAN_FROM_STEP = 12  # optimizer.iterations at which the loss turns NaN


def _weights_finite(model_dir, prefix):
  """Every float model variable stored in a checkpoint is finite."""
  reader = tf.train.load_checkpoint(os.path.join(model_dir, prefix))
  names = [n for n in reader.get_variable_to_shape_map()
           if "/.ATTRIBUTES/VARIABLE_VALUE" in n and "optimizer" not in n
           and reader.get_variable_to_dtype_map()[n].is_floating]
  assert names
  return all(np.isfinite(reader.get_tensor(n)).all() for n in names)


@pytest.mark.reliability
@pytest.mark.slow  # trains into the second epoch
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path,
                                                           monkeypatch):
  original = models.CtrCvrModel.compute_loss

  def nan_loss(self, inputs, training=False):
    loss = original(self, inputs, training)
    if not training:
      return loss
    broken = self.optimizer.iterations >= NAN_FROM_STEP
    return loss * tf.where(broken, float("nan"), 1.0)  # NaN gradients too

  monkeypatch.setattr(models.CtrCvrModel, "compute_loss", nan_loss)
  model_dir = str(tmp_path / "model")
  with pytest.raises(cb.NonFiniteError) as info:
    train_lib.train(_tiny("train.epochs=3"), model_dir, tiny_data, verbose=0,
                   log=lambda _: None)
  message = str(info.value)
  assert "loss is nan after global step 14 (epoch 2)" in message
  assert "step-12" in message and "learning_rate" in message
  steps_dir = os.path.join(model_dir, resume.STEPS_DIR)
  assert tf.train.latest_checkpoint(steps_dir).endswith("step-12")
  assert _weights_finite(steps_dir, "step-12")
  assert _weights_finite(model_dir, "checkpoints/epoch-001")
  assert _weights_finite(model_dir, "best/weights")
  assert not os.path.exists(os.path.join(model_dir, "checkpoints",
                                         "epoch-002.index"))
