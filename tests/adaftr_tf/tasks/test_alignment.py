"""Tests of adaftr_tf.tasks.alignment: which signal trains the relatedness
network, and that its prediction tracks the planted relatedness."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import overrides
from tests.helpers.data import agreement_model


def test_infonce_does_not_train_the_relatedness_network():
  model, batch = agreement_model("loss.relatedness_loss_weight=0",
                                  "loss.contrastive_weight=1.0")
  relatedness = model.alignment_task.alignment.relatedness
  model.compute_loss(batch, training=True)  # build every variable
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert relatedness.trainable_variables
  assert all(g is None or not np.any(g.numpy()) for g in grads)
  # With the regression weight on, the same variables do get gradient.
  model.alignment_task.regression_weight = 1.0
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_contrastive_signal_does_train_the_relatedness_network():
  model, batch = agreement_model("loss.relatedness_signal=contrastive")
  relatedness = model.alignment_task.alignment.relatedness
  model.compute_loss(batch, training=True)
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_expert_representation_trains_with_finite_losses():
  model, batch = agreement_model("loss.agreement_representation=experts")
  losses = [float(model.train_step(batch)["loss"]) for _ in range(3)]
  assert np.all(np.isfinite(losses))
  assert model.alignment_task.agreement_tracker.result().numpy() != 0


@pytest.mark.slow  # a 4-epoch training run on 40,000 rows
def test_predicted_relatedness_tracks_planted_relatedness(tmp_path):
  """Strongly planted relatedness (many clicks and purchases, a strong
  signal): after a short run the relatedness network's prediction (-tau)
  ranks the validation rows like the planted r. Measured Spearman for seeds
  42 (this test), 5, 9, 0, 1, 2: +0.19, +0.36, +0.06, +0.22, +0.09, +0.06
  (mean +0.16). Which value a seed gives depends on float rounding (it moved
  when the InfoNCE became one fused XLA loss), so the test asserts the sign,
  which every measured trajectory had. The measured agreement itself is not
  reliably positive (-0.005 to +0.38), so it is only checked to be defined."""
  from pipelines.training import train_lib
  config = overrides.apply(experiments.get_preset("tiny"), [
      "data.synthetic.num_train=40000", "data.synthetic.num_valid=5000",
      "data.synthetic.click_rate=0.3", "data.synthetic.cvr_rate=0.5",
      "data.synthetic.signal_scale=3", "train.epochs=4",
      "loss.relatedness_signal=gradient_agreement"])
  result = train_lib.train(config, str(tmp_path / "model"),
                          str(tmp_path / "data"), verbose=0,
                          log=lambda _: None)
  valid = result["valid"]
  assert valid["spearman_neg_tau_vs_r"] > 0.0, valid
  assert np.isfinite(valid["spearman_agreement_vs_r"]), valid
  assert valid["tau_std"] > 0.01   # not collapsed to one value
