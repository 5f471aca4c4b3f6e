"""The inter-task alignment block of AdaFTR: projection heads + temperature.

Training-time only: it turns the task representations into the normalised
vectors `u = g(h_ctr)`, `v = g'(h_cvr)` and the per-instance temperature `tau`
that the adaptive InfoNCE loss (`adaftr_tf.losses.info_nce`) consumes.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf.layers.relatedness import RelatednessNetwork
from adaftr_tf.layers.towers import ProjectionHead

@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class TaskAlignment(tf_keras.layers.Layer):
  """Projection heads g, g' and the relatedness (temperature) network.

  Args:
    projection_hidden, projection_dim: sizes of both projection heads.
    relatedness_units: hidden layers of the relatedness network f.
    tau_min, tau_max: bounds of tau.
    temperature_mode: `instance`, `global` or `fixed`.
    fixed_tau: tau for `fixed` mode.
    relatedness_input: `embeddings` (f reads the instance embeddings) or
      `towers_detached` (f reads stop_gradient([h_ctr, h_cvr])).
    relatedness_stop_gradient: with `embeddings`, stop f's gradient from
      reaching the embedding tables.
    seed: initialiser seed.
  """

  def __init__(self, projection_hidden: int, projection_dim: int,
               relatedness_units: tuple[int, ...], tau_min: float,
               tau_max: float, temperature_mode: str = "instance",
               fixed_tau: float | None = None,
               relatedness_input: str = "embeddings",
               relatedness_stop_gradient: bool = True, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    choices.check("relatedness_input", relatedness_input,
                  choices.RelatednessInput)
    self._config = dict(
        projection_hidden=projection_hidden, projection_dim=projection_dim,
        relatedness_units=tuple(relatedness_units), tau_min=tau_min,
        tau_max=tau_max, temperature_mode=temperature_mode, fixed_tau=fixed_tau,
        relatedness_input=relatedness_input,
        relatedness_stop_gradient=relatedness_stop_gradient, seed=seed)
    self.ctr_projection = ProjectionHead(projection_hidden, projection_dim,
                                         seed=seed, name="ctr_projection")
    self.cvr_projection = ProjectionHead(projection_hidden, projection_dim,
                                         seed=seed + 1, name="cvr_projection")
    self.relatedness = RelatednessNetwork(
        tuple(relatedness_units), tau_min, tau_max, mode=temperature_mode,
        fixed_tau=fixed_tau, seed=seed + 2, name="relatedness")

  @property
  def reads_towers(self) -> bool:
    """f reads the tower outputs (else the embeddings alone)."""
    return self._config["relatedness_input"] != "embeddings"

  def relatedness_input(self, embeddings: tf.Tensor, h_ctr: tf.Tensor | None,
                        h_cvr: tf.Tensor | None) -> tf.Tensor:
    """What f reads: embeddings `[batch, e]` or [h_ctr, h_cvr] `[batch, 2d]`
    (h_ctr, h_cvr may be None when f reads the embeddings)."""
    if not self.reads_towers:
      x = embeddings
      if self._config["relatedness_stop_gradient"]:
        x = tf.stop_gradient(x)
      return x
    return tf.stop_gradient(tf.concat([h_ctr, h_cvr], axis=-1))

  def temperature(self, embeddings: tf.Tensor, h_ctr: tf.Tensor | None,
                  h_cvr: tf.Tensor | None, training=None):
    """(tau `[batch]` float32, relatedness logit f `[batch]` or None).

    The one path to tau: `tau = relatedness.tau_from_logit(f)`; in fixed mode
    tau is the constant and there is no f (None).
    """
    x = self.relatedness_input(embeddings, h_ctr, h_cvr)
    relatedness = self.relatedness
    if relatedness.mode == "fixed":
      return relatedness(x, training=training), None
    logit = relatedness.relatedness_logit(x, training=training)
    return relatedness.tau_from_logit(logit), logit

  def call(self, embeddings, h_ctr, h_cvr, training=None):
    """Returns (u `[batch, p]`, v `[batch, p]`, tau `[batch]`, f `[batch]` or
    None), float32."""
    u = self.ctr_projection(h_ctr)
    v = self.cvr_projection(h_cvr)
    tau, logit = self.temperature(embeddings, h_ctr, h_cvr, training=training)
    return u, v, tau, logit

  def get_config(self):
    return {**super().get_config(), **self._config}
