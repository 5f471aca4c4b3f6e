"""AdaFTR's alignment objective: InfoNCE between the task representations
with a per-instance temperature from the relatedness network."""

from __future__ import annotations

import functools

import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf import features as F
from adaftr_tf import folds as folds_lib
from adaftr_tf.layers.alignment import TaskAlignment
from adaftr_tf.losses import relatedness_regression_loss
from adaftr_tf.tasks import controls
from adaftr_tf.tasks import meta_gradient
from adaftr_tf.tasks import teacher_fields
from adaftr_tf.tasks import transfer_gate
from adaftr_tf.tasks.contrastive import ContrastiveTask


def rows_teacher_tau(taus: tf.Tensor, features, *, cross_fitted: bool,
                     training) -> tf.Tensor:
  """The tau `[batch]` each row reads from K teachers' taus `[batch, K]`:
  one teacher's; with cross-fitted teachers in training, that of the row's
  fold (adaftr_tf/folds.py: the teacher that never trained on it); else
  (evaluation, an ensemble) their mean."""
  if taus.shape[1] == 1:
    return taus[:, 0]
  if training and cross_fitted:
    fold = folds_lib.row_fold(features, taus.shape[1])
    return tf.gather(taus, fold, axis=1, batch_dims=1)
  return tf.reduce_mean(taus, axis=1)


class AlignmentTask(tf_keras.layers.Layer):
  """`weight * InfoNCE(g(h_ctr), g'(h_cvr); tau_i)` per impression.

  tau_i comes from `alignment` (projection heads g, g' and the relatedness
  network f, layers/alignment.py) on one path for training and inference
  (`TaskAlignment.temperature`). What trains f is `signal`:
    contrastive: the InfoNCE itself (the paper reading);
    gradient_agreement: a regression of sigmoid(-f) on the measured
      per-instance gradient agreement (`AgreementProbe`, passed in by the
      model), weighted by `regression_weight`; InfoNCE then sees a
      stop-gradient tau;
    fixed: nothing (tau is constant);
    transfer_gate: the conversion labels, through a probe whose per-instance
      slope g = softplus(f) of conversions on the CTR logit sets tau
      (tasks/transfer_gate.py), weighted by `regression_weight`; InfoNCE
      sees a stop-gradient tau;
    meta_gradient: the first-order hypergradient of a held-out conversion
      loss through a virtual alignment step (tasks/meta_gradient.py), with
      weight `regression_weight * weight`, on phi only; InfoNCE sees a
      stop-gradient tau. It reads the model's recorded forward pass
      (`meta`), in training only.

  Args:
    alignment: TaskAlignment.
    contrastive: ContrastiveTask (the InfoNCE and its negatives).
    weight: lambda.
    signal: one of `choices.RelatednessSignal`.
    regression_weight: weight of the agreement regression or of the
      transfer gate's probe.
    tau_source: `network` (the above), a control (tasks/controls.py) that
      sets tau from the planted relatedness or a field, in training only, or
      `teacher`: a trained model's tau (`set_teacher`), in training only.
    tau_field: the categorical field of `field_hash` and `noisy_oracle`.
    oracle_noise: the hash's weight in `noisy_oracle`.
    seed: seed of `shuffled_oracle`'s permutations (with the step).
    one_way: h_ctr enters behind a stop-gradient (only the CVR side moves).
    funnel: the second label is observed where the first is 1 (the funnel's
      clicked impressions: the gate's probe reads those rows); False for
      independent tasks (the probe reads every row).
    meta_every: the meta-gradient runs on the steps divisible by it (0 on
      the others).
    start: the fraction of the training steps before the InfoNCE term
      switches on (`set_total_steps` turns it into a step; the signal's own
      loss trains from the first step).
    gate_quantile: the transfer gate's tau maps its slopes linearly between
      their `gate_quantile` and `1 - gate_quantile` batch quantiles.
    field_dim: D, the width of each field's embedding in `embeddings`
      (`[batch, F*D]`, field-major); needed by `field_share`.
    field_share: > 0: a linear f's tau reads only the fields carrying at
      least this share of its logit's variance in the batch
      (tasks/teacher_fields.py; f itself still trains on every field).

  Call:
    embeddings: `[batch, e]` the flattened instance embeddings.
    outputs: the model's outputs (`h_ctr`, `h_cvr` `[batch, d]`).
    labels: click, conversion `[batch]` (transfer_gate only).
    agreement: `[batch]` measured agreement (gradient_agreement only).
    step: the optimizer step (seeds the random negative), or None.
    features, oracle: the batch's raw features and oracle columns (controls).
    meta: meta_gradient.Recording of the forward pass (meta_gradient, in
      training; None otherwise).

  Returns:
    (loss `[batch]`, {"tau": `[batch]`}).
  """

  def __init__(self, alignment: TaskAlignment, contrastive: ContrastiveTask,
               weight: float, signal: str = "contrastive",
               regression_weight: float = 1.0, tau_source: str = "network",
               tau_field: str = "categorical_1", seed: int = 0,
               one_way: bool = False, oracle_noise: float = 0.5,
               funnel: bool = True, meta_every: int = 1, start: float = 0.0,
               gate_quantile: float = transfer_gate.DEFAULT_QUANTILE,
               field_dim: int | None = None, field_share: float = 0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.alignment = alignment
    self.contrastive = contrastive
    self.weight = float(weight)
    self.signal = choices.check("relatedness_signal", signal,
                                choices.RelatednessSignal)
    self.regression_weight = float(regression_weight)
    self.tau_source = choices.check("tau_source", tau_source,
                                    choices.TauSource)
    self.tau_field, self.seed = tau_field, int(seed)
    self.one_way = bool(one_way)
    self.oracle_noise = float(oracle_noise)
    self.funnel = bool(funnel)
    self.meta_every = int(meta_every)
    self.start, self.start_step = float(start), 0
    self.gate_quantile = float(gate_quantile)
    self.field_dim, self.field_share = field_dim, float(field_share)
    if self.field_share and not field_dim:
      raise ValueError("field_share needs field_dim (the width of a field's "
                       "embedding)")
    self._teacher = None   # set_teacher: partials, so never tracked
    self._cross_fitted = False
    self.needs_agreement = signal == "gradient_agreement"
    self.needs_recording = signal == "meta_gradient"
    if self.needs_recording:
      self.meta_tracker = tf_keras.metrics.Mean(name="meta_inner_product")
    if self.needs_agreement:
      self.agreement_tracker = tf_keras.metrics.Mean(name="agreement_mean")
    if signal == "transfer_gate":
      self.gate_intercept = self.add_weight(
          "gate_intercept", shape=[], dtype=tf.float32,
          initializer=tf_keras.initializers.Constant(
              transfer_gate.INITIAL_INTERCEPT))
      self.slope_tracker = tf_keras.metrics.Mean(name="gate_slope_mean")

  def set_total_steps(self, total_steps: int | None) -> None:
    """The InfoNCE term switches on at `start * total_steps` (the training
    steps of the run; needed when `start > 0`)."""
    if self.start > 0 and not total_steps:
      raise ValueError(f"loss.alignment_start={self.start} needs the run's "
                       "number of training steps (train with pipelines.train)")
    self.start_step = int(round(self.start * (total_steps or 0)))

  def _info_nce(self, u, v, tau, step):
    """`weight * InfoNCE` `[batch]`, 0 on training steps before
    `start_step` (`step` None: evaluation, always on)."""
    loss = self.weight * self.contrastive(u, v, tau, step=step)
    if self.start_step == 0 or step is None:
      return loss
    return loss * tf.cast(step >= self.start_step, loss.dtype)

  @property
  def tau_bounds(self) -> tuple[float, float]:
    """(tau_min, tau_max)."""
    relatedness = self.alignment.relatedness
    return relatedness.tau_min, relatedness.tau_max

  def _network_tau(self, tau, logit, embeddings, min_share=None):
    """The relatedness network's tau `[batch]` (mapped from the slope under
    transfer_gate): the one function of (tau, f) for training and inference.
    With a field share (`min_share`, default `field_share`) > 0, tau reads
    the linear f of the embeddings `[batch, F*D]` through the fields
    carrying at least that share of its variance in the batch."""
    share = self.field_share if min_share is None else min_share
    if share:
      logit = self._pruned_logit(embeddings, share)
      tau = self.alignment.relatedness.tau_from_logit(logit)
    if self.signal != "transfer_gate":
      return tau
    return transfer_gate.gate_tau(transfer_gate.slope(logit),
                                  *self.tau_bounds, self.gate_quantile)

  def call(self, embeddings, outputs, labels=None, agreement=None, step=None,
           training=None, features=None, oracle=None, meta=None):
    u, v, tau, logit = self.alignment(embeddings,
                                      self._ctr_side(outputs[F.H_CTR]),
                                      outputs[F.H_CVR], training=training)
    tau = self._network_tau(tau, logit, embeddings)
    if self.needs_recording:
      loss = self._info_nce(u, v, tf.stop_gradient(tau), step)
      if meta is not None:
        loss += self._every_meta_step(meta, outputs, labels, tau, step)
      return loss, {F.TAU: tf.stop_gradient(tau)}
    if self.signal == "transfer_gate":
      g = transfer_gate.slope(logit)   # the probe reads every field
      self.slope_tracker.update_state(g)
      probe = self.regression_weight * transfer_gate.probe_loss(
          g, outputs[F.CTR_LOGIT], self._observed(labels),
          labels[F.CONVERSION],
          self.gate_intercept)
      tau = tf.stop_gradient(tau)
      return probe + self._info_nce(u, v, tau, step), {F.TAU: tau}
    if self.tau_source == "teacher":
      tau = self._teacher_tau(features, training)
    elif self.tau_source != "network":
      step_seed = tf.cast(0 if step is None else step, tf.int64)
      tau = controls.control_tau(
          self.tau_source, *self.tau_bounds, features, oracle, self.tau_field,
          seed=tf.stack([tf.constant(self.seed, tf.int64), step_seed]),
          noise=self.oracle_noise)
    if not self.needs_agreement:
      return self._info_nce(u, v, tau, step), {F.TAU: tau}
    if agreement is None:
      raise ValueError("relatedness_signal=gradient_agreement needs the "
                       "measured agreement (the model's AgreementProbe)")
    self.agreement_tracker.update_state(agreement)
    tau = tf.stop_gradient(tau)   # f learns the agreement, not the InfoNCE
    regression = self.regression_weight * relatedness_regression_loss(
        agreement, logit)
    return regression + self._info_nce(u, v, tau, step), {F.TAU: tau}

  def set_teacher(self, *teachers: tf_keras.Model,
                  cross_fitted: bool = False,
                  min_field_share: float = 0.0) -> None:
    """Attaches the model(s) whose tau `tau_source=teacher` reads (their
    `instance_tau`: the embeddings and relatedness network alone when f
    reads the embeddings); several: an ensemble (every row reads their
    mean), or with `cross_fitted` teachers in fold order, the k-th trained
    without the rows of fold k. `min_field_share` > 0 reads each (linear)
    teacher through the fields that carry its relatedness
    (tasks/teacher_fields.py). Each is held through a
    `functools.partial`, which Keras does not track: their variables are in
    no checkpoint, variable list or export of this model."""
    if not teachers:
      raise ValueError("set_teacher needs at least one teacher model")
    self._teacher = tuple(
        functools.partial(t.instance_tau, min_field_share=min_field_share)
        for t in teachers)
    self._cross_fitted = cross_fitted and len(teachers) > 1

  def _teacher_tau(self, features, training=None):
    """The teacher's tau `[batch]` for the batch's raw features, fixed
    (stop-gradient) and clipped to this task's bounds. With K cross-fitted
    teachers, a training row reads the teacher of its fold
    (adaftr_tf/folds.py: the one that never trained on it); evaluation
    reads their mean; an ensemble's rows read their mean throughout."""
    if self._teacher is None:
      raise ValueError("loss.tau_source=teacher: no teacher model attached "
                       "(the training job attaches loss.teacher_dir's model)")
    if features is None:
      raise ValueError("loss.tau_source=teacher needs the batch's features")
    taus = tf.stack([tf.reshape(t(features), [-1]) for t in self._teacher],
                    axis=1)   # [batch, K]
    tau = rows_teacher_tau(taus, features, cross_fitted=self._cross_fitted,
                           training=training)
    return tf.clip_by_value(tf.stop_gradient(tau), *self.tau_bounds)

  def _ctr_side(self, h_ctr):
    """h_ctr as the alignment reads it: behind a stop-gradient if one-way."""
    return tf.stop_gradient(h_ctr) if self.one_way else h_ctr

  def _observed(self, labels):
    """`[batch]` 1 where the second label is observed: the clicked rows of a
    funnel, every row of independent tasks."""
    return (labels[F.CLICK] if self.funnel
            else tf.ones_like(labels[F.CONVERSION]))

  def _every_meta_step(self, meta, outputs, labels, tau, step):
    """`_meta_loss` on the steps divisible by `meta_every`, else 0 `[batch]`."""
    if self.meta_every == 1 or step is None:
      return self._meta_loss(meta, outputs, labels, tau, step)
    return tf.cond(
        tf.equal(tf.math.floormod(tf.cast(step, tf.int64), self.meta_every),
                 0),
        lambda: self._meta_loss(meta, outputs, labels, tau, step),
        lambda: tf.zeros_like(tau))

  def _meta_loss(self, meta, outputs, labels, tau, step):
    """R = -regression_weight * lambda * M(tau) `[batch]` (the same scalar
    on every row: the batch mean is R), gradient to tau's network only
    (tasks/meta_gradient.py)."""
    batch = tf.shape(tau)[0]
    rows = meta_gradient.meta_rows(batch)
    held_out = lambda: meta_gradient.meta_loss(
        outputs[F.CVR_LOGIT], self._observed(labels), labels[F.CONVERSION],
        rows)
    representations = [outputs[F.H_CTR], outputs[F.H_CVR]]
    directions = meta_gradient.tangents(meta, held_out, representations)
    half = batch // 2

    def alignment_loss(h_ctr, h_cvr, tau):
      u = self.alignment.ctr_projection(self._ctr_side(h_ctr))
      v = self.alignment.cvr_projection(h_cvr)
      return tf.reduce_mean(self.contrastive.loss(u, v, tau, step=step,
                                                  gather=False))

    value, gradient = meta_gradient.hypergradient(
        alignment_loss, [h[half:] for h in representations],
        [d[half:] for d in directions], tau[half:])
    self.meta_tracker.update_state(value)
    scale = -self.regression_weight * self.weight
    return scale * meta_gradient.surrogate(value, gradient, tau[half:]) * (
        tf.ones_like(tau))

  def _pruned_logit(self, embeddings, min_share):
    """A linear f `[batch]` of the embeddings `[batch, F*D]` read through
    the fields carrying at least `min_share` of its variance in the batch."""
    kernel, bias = self.alignment.relatedness.linear_weights()
    width = embeddings.shape[-1]
    if not self.field_dim or width is None or width % self.field_dim:
      raise ValueError(f"embeddings of width {width} do not split into "
                       f"fields of width {self.field_dim}")
    return teacher_fields.pruned_logit(
        tf.stop_gradient(embeddings), kernel, bias, width // self.field_dim,
        min_share)

  def embeddings_tau(self, embeddings: tf.Tensor,
                     min_share: float | None = None) -> tf.Tensor:
    """Inference tau `[batch]` of f on the field embeddings `[batch, F*D]`;
    `min_share` > 0: a linear f read through the fields whose share of its
    variance in the batch is at least `min_share` (tasks/teacher_fields.py;
    None: this task's own `field_share`)."""
    if self.tau_source != "network" or self.alignment.reads_towers:
      raise ValueError("embeddings_tau needs loss.tau_source=network and "
                       "loss.relatedness_input=embeddings")
    tau, logit = self.alignment.temperature(embeddings, None, None,
                                            training=False)
    return self._network_tau(tau, logit, embeddings, min_share)

  def inference_outputs(self, embeddings, outputs, training=None):
    """{"tau": `[batch]`} without the projections ({} for a control source,
    whose tau exists in training only). `outputs` may lack h_ctr and h_cvr
    when f reads the embeddings (`alignment.reads_towers` False)."""
    if self.tau_source != "network":
      return {}
    tau, logit = self.alignment.temperature(
        embeddings, outputs.get(F.H_CTR), outputs.get(F.H_CVR),
        training=training)
    return {F.TAU: self._network_tau(tau, logit, embeddings)}
