"""The task heads: CTR and CVR towers and the three predictions' logits."""

import tensorflow as tf
import tf_keras

from adaftr_tf.layers.mlp import validate_rate
from adaftr_tf.layers.mlp import validate_seed
from adaftr_tf.layers.mlp import validate_units
from adaftr_tf.layers.towers import TaskTower
from adaftr_tf.layers.transfer import AttentionTransfer
from adaftr_tf.losses.multitask import conditional_cvr_logit
from adaftr_tf.losses.multitask import ctcvr_logit


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class TaskHeads(tf_keras.layers.Layer):
  """Two task towers on the backbone's two outputs, ESMM or AITM layout.

  ESMM (`transfer=False`): `a, h_ctr = ctr_tower(ctr_in)`,
  `b, h_cvr = cvr_tower(cvr_in)`, the CTCVR logit `z` with
  `sigmoid(z) = sigmoid(a) sigmoid(b)` (computed in log space).
  AITM (`transfer=True`): the CVR tower's representation receives the CTR
  tower's through the AIT unit, `h_cvr = AIT(h_ctr, cvr_tower.hidden(cvr_in))`,
  its head predicts the CTCVR logit `z` directly and `b` is the implied
  conditional CVR logit, `sigmoid(b) = sigmoid(z) / sigmoid(a)`.
  Click gate (`click_gate=True`, ESMM layout only): the CVR logit also reads
  the stop-gradient CTR logit with an instance-specific slope learned from
  the conversion labels, `b = cvr_tower(cvr_in) + g * sg(a)`,
  `g = softplus(w . h_cvr + c)` `[batch]` (the transfer gate of
  tasks/transfer_gate.py used in prediction instead of as a temperature).

  Args:
    tower_units: each tower's hidden layers (the last: the representation).
    dropout: dropout rate in the towers.
    transfer: AITM's AIT unit between the towers.
    click_gate: the CVR logit's gated stop-gradient CTR-logit term.
    seed: initialiser seed (CTR tower `seed`, CVR tower `seed + 1`).

  Call:
    ctr_in, cvr_in: `[batch, e]` the backbone's task inputs.

  Returns:
    (a, b, z) logits `[batch]` float32 (CTR, CVR, CTCVR), and
    (h_ctr, h_cvr) task representations `[batch, tower_units[-1]]`.
  """

  def __init__(self, tower_units, dropout=0.0, transfer=False, seed=0,
               click_gate=False, **kwargs):
    super().__init__(**kwargs)
    self.tower_units = validate_units("tower_units", tower_units)
    self.dropout = validate_rate("dropout", dropout)
    self.transfer = bool(transfer)
    self.seed = validate_seed(seed)
    self.ctr_tower = TaskTower(self.tower_units, dropout=self.dropout,
                               seed=self.seed, name="ctr_tower")
    self.cvr_tower = TaskTower(self.tower_units, dropout=self.dropout,
                               seed=self.seed + 1, name="cvr_tower")
    self.ait = (AttentionTransfer(self.tower_units[-1], seed=self.seed,
                                  name="ait") if self.transfer else None)
    if click_gate and self.transfer:
      raise ValueError("click_gate needs the ESMM layout (transfer=False): "
                       "AITM's CVR logit is implied by its CTCVR logit")
    self.click_gate = bool(click_gate)
    self.gate = (tf_keras.layers.Dense(
        1, kernel_initializer=tf_keras.initializers.GlorotUniform(
            self.seed + 2), name="click_gate") if self.click_gate else None)

  def call(self, ctr_in, cvr_in, training=None):
    a, h_ctr = self.ctr_tower(ctr_in, training=training)
    if self.ait is None:
      b, h_cvr = self.cvr_tower(cvr_in, training=training)
      if self.gate is not None:
        b = b + self.gated_click_logit(a, h_cvr)
      return (a, b, ctcvr_logit(a, b)), (h_ctr, h_cvr)
    h_cvr, _ = self.ait(h_ctr, self.cvr_tower.hidden(cvr_in, training))
    z = self.cvr_tower.logit(h_cvr)
    return (a, conditional_cvr_logit(a, z), z), (h_ctr, h_cvr)

  def gated_click_logit(self, a, h_cvr):
    """g * sg(a) `[batch]` float32 from a `[batch]` and h_cvr `[batch, h]`."""
    g = tf.nn.softplus(tf.cast(tf.squeeze(self.gate(h_cvr), -1), tf.float32))
    return g * tf.stop_gradient(tf.cast(a, tf.float32))

  def get_config(self):
    config = super().get_config()
    config.update(tower_units=list(self.tower_units), dropout=self.dropout,
                  transfer=self.transfer, seed=self.seed,
                  click_gate=self.click_gate)
    return config
