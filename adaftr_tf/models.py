"""The joint CTR/CVR models; `build_model(config, schema)` is the only config reader.

Forward pass (DESIGN.md §1), shapes for a batch of B impressions with F fields:

  raw features --FeatureEncoder--> ids [B, n_cat], numerical [B, n_num]
  --FieldEmbedding--> [B, F, D] --flatten--> x [B, F*D]
  --backbone (MMoE)--> [ctr_in, cvr_in], each [B, E]
  --TaskTower x2--> logits a, b [B]; task representations h_ctr, h_cvr [B, H]
  p_ctr = σ(a), p_cvr = σ(b), p_ctcvr = p_ctr·p_cvr (from log σ(a) + log σ(b)).

Loss per impression: BCE(click, p_ctr) + BCE(conversion, p_ctcvr) in log space,
plus λ·InfoNCE(g(h_ctr), g'(h_cvr); τ_i) when the alignment block is present.
Every per-example loss is averaged over the *global* batch
(`tf.nn.compute_average_loss`), so gradients are right under tf.distribute.
"""

from __future__ import annotations

import contextlib
from typing import Mapping

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from adaftr_tf import features as F
from adaftr_tf import config as config_lib
from adaftr_tf.config import Config
from adaftr_tf.layers import PLE, FieldEmbedding, MMoE, SharedBottom, TaskTower
from adaftr_tf.layers.alignment import TaskAlignment
from adaftr_tf.layers.task_bottoms import TaskBottoms
from adaftr_tf.layers.transfer import AttentionTransfer
from adaftr_tf.losses import behavioural_calibration
from adaftr_tf.losses import bce_with_logits
from adaftr_tf.losses import conditional_cvr_logit
from adaftr_tf.losses import ctcvr_logit
from adaftr_tf.losses import per_example_cosine
from adaftr_tf.losses import relatedness_regression_loss
from adaftr_tf.optimizers import build_optimizer
from adaftr_tf.preprocessing import FeatureEncoder
from adaftr_tf.tasks import ContrastiveTask, ranking_task

# A task that does not read x (single-task CVR) has a zero gradient there.
ZERO = tf.UnconnectedGradients.ZERO


class CtrCvrModel(tfrs.models.Model):
  """Shared-embedding multi-task model with an optional AdaFTR alignment block.

  Args:
    encoder: raw features -> (ids, numerical).
    embedding: FieldEmbedding.
    backbone: layer mapping x `[B, F*D]` (or, with `cvr_embedding`, the pair
      [x_ctr, x_cvr]) to a list of two task inputs.
    ctr_tower, cvr_tower: TaskTower layers.
    alignment: TaskAlignment or None (no contrastive loss).
    contrastive: ContrastiveTask (required when `alignment` is given).
    contrastive_weight: λ.
    cvr_embedding: a second FieldEmbedding for the CVR task (single-task
      reference: no shared parameters at all), or None.
    transfer: AttentionTransfer (AITM) or None. With it the CVR head predicts
      the CTCVR probability directly, and p_cvr = p_ctcvr / p_ctr.
    calibration_weight: weight of AITM's calibrator max(p_ctcvr - p_ctr, 0).
    relatedness_signal: what trains the relatedness network: `contrastive`
      (InfoNCE, the paper reading), `gradient_agreement` (regression on the
      measured CTR/CTCVR gradient agreement; InfoNCE sees a stop-gradient
      tau) or `fixed`.
    relatedness_loss_weight: weight of the agreement regression loss.
    agreement_source: `logits` (cosine of the CTR and CVR logit gradients)
      or `losses` (of the CTR and CTCVR loss gradients).
    agreement_representation: the gradients are taken with respect to the
      shared `embeddings` x or to the backbone's shared `experts` outputs.
  """

  def __init__(self, encoder, embedding, backbone, ctr_tower, cvr_tower,
               alignment=None, contrastive=None, contrastive_weight=0.0,
               cvr_embedding=None, transfer=None, calibration_weight=0.0,
               relatedness_signal="contrastive", relatedness_loss_weight=1.0,
               agreement_source="losses",
               agreement_representation="embeddings", **kwargs):
    super().__init__(**kwargs)
    if (alignment is None) != (contrastive is None):
      raise ValueError("alignment and contrastive must be given together")
    self.encoder = encoder
    self.embedding = embedding
    self.cvr_embedding = cvr_embedding
    self.transfer = transfer
    self.calibration_weight = float(calibration_weight)
    self.backbone = backbone
    self.ctr_tower = ctr_tower
    self.cvr_tower = cvr_tower
    self.alignment = alignment
    self.contrastive = contrastive
    self.contrastive_weight = float(contrastive_weight)
    self.ctr_task = ranking_task("ctr")
    self.ctcvr_task = ranking_task("ctcvr")
    self.cvr_task = ranking_task("cvr")  # metrics on clicked impressions only
    self.loss_tracker = tf_keras.metrics.Mean(name="loss")
    if relatedness_signal not in config_lib.RELATEDNESS_SIGNALS:
      raise ValueError(f"relatedness_signal={relatedness_signal!r}; valid: "
                       f"{config_lib.RELATEDNESS_SIGNALS}")
    self.relatedness_signal = relatedness_signal
    self.relatedness_loss_weight = float(relatedness_loss_weight)
    if agreement_source not in config_lib.AGREEMENT_SOURCES:
      raise ValueError(f"agreement_source={agreement_source!r}; valid: "
                       f"{config_lib.AGREEMENT_SOURCES}")
    self.agreement_source = agreement_source
    if agreement_representation not in config_lib.AGREEMENT_REPRESENTATIONS:
      raise ValueError(
          f"agreement_representation={agreement_representation!r}; valid: "
          f"{config_lib.AGREEMENT_REPRESENTATIONS}")
    self.agreement_representation = agreement_representation
    if alignment is not None and relatedness_signal == "gradient_agreement":
      self.agreement_tracker = tf_keras.metrics.Mean(name="agreement_mean")

  def _embed(self, features: Mapping[str, tf.Tensor]):
    """Flattened embeddings x `[B, F*D]` (and x_cvr for single-task, else None)."""
    ids, numerical = self.encoder(features)
    x = tf.reshape(self.embedding(ids, numerical), [-1, self.embedding.output_dim])
    if self.cvr_embedding is None:
      return x, None
    return x, tf.reshape(self.cvr_embedding(ids, numerical),
                         [-1, self.cvr_embedding.output_dim])

  def _forward(self, features: Mapping[str, tf.Tensor], training=None):
    """Returns (outputs without tau, flattened embeddings x `[B, F*D]`)."""
    x, x_cvr = self._embed(features)
    return self._heads(x, x_cvr, training), x

  def _heads(self, x, x_cvr, training, tap=None):
    """Backbone, towers and predictions from the embeddings (`tap`: see
    layers/experts.py)."""
    backbone_input = x if x_cvr is None else [x, x_cvr]
    if tap is None:
      ctr_in, cvr_in = self.backbone(backbone_input, training=training)
    else:
      ctr_in, cvr_in = self.backbone(backbone_input, training=training,
                                     tap=tap)
    a, h_ctr = self.ctr_tower(ctr_in, training=training)
    if self.transfer is None:
      b, h_cvr = self.cvr_tower(cvr_in, training=training)
      z = ctcvr_logit(a, b)
    else:  # AITM: the CVR head predicts click-and-convert directly.
      h_cvr, _ = self.transfer(h_ctr, self.cvr_tower.hidden(cvr_in, training))
      z = self.cvr_tower.logit(h_cvr)
      b = conditional_cvr_logit(a, z)
    return {F.CTR_LOGIT: a, F.CVR_LOGIT: b, F.CTCVR_LOGIT: z,
            F.CTR: tf.sigmoid(a), F.CVR: tf.sigmoid(b),
            F.CTCVR: tf.sigmoid(z), F.H_CTR: h_ctr, F.H_CVR: h_cvr}

  def call(self, features: Mapping[str, tf.Tensor], training=None):
    """Returns the output dict: probabilities, logits, h_ctr, h_cvr (and tau)."""
    outputs, x = self._forward(features, training=training)
    if self.alignment is not None:
      outputs[F.TAU] = self.alignment.temperature(
          x, outputs[F.H_CTR], outputs[F.H_CVR], training=training)
    return outputs

  def _task_losses(self, features, labels, training, probe_agreement=False):
    """Per-example CTR and CTCVR losses `[b]`, outputs, x and the agreement.

    The losses go through the ranking tasks (which update their metrics).
    With `probe_agreement`, also the per-instance agreement `[b]` (see
    `_agreement`), else None.
    """
    x, x_cvr = self._embed(features)
    click = labels[F.CLICK][:, None]
    conversion = labels[F.CONVERSION][:, None]
    probe = (tf.GradientTape(persistent=True) if probe_agreement
             else contextlib.nullcontext())
    with probe:
      tap, shared = self._shared_tap(probe, x) if probe_agreement else (
          None, None)
      outputs = self._heads(x, x_cvr, training, tap)
      ctr_loss = self.ctr_task(click, outputs[F.CTR_LOGIT][:, None])
      ctcvr_loss = self.ctcvr_task(conversion, outputs[F.CTCVR_LOGIT][:, None])
    agreement = None
    if probe_agreement:
      agreement = self._agreement(probe, shared[0], outputs, ctr_loss,
                                  ctcvr_loss)
      del probe
    return ctr_loss, ctcvr_loss, outputs, x, agreement

  def _shared_tap(self, tape, x):
    """(tap for the backbone or None, one-element list of the shared tensor).

    `embeddings`: x itself, watched. `experts`: the backbone's shared
    experts' outputs, captured by the tap while `tape` records.
    """
    if self.agreement_representation == "embeddings":
      tape.watch(x)
      return None, [x]
    shared = []

    def tap(tensor):
      tape.watch(tensor)
      shared.append(tensor)
      return tensor
    return tap, shared

  def _agreement(self, tape, shared, outputs, ctr_loss, ctcvr_loss):
    """Per-instance cosine `[b]` (stop-gradient) between the gradients, with
    respect to the shared representation `[b, ...]` (rows = instances), of
    the two tasks' logits (`agreement_source=logits`: CTR and CVR logit) or
    losses (`losses`: CTR and CTCVR loss), all recorded on `tape` (see
    losses/agreement.py)."""
    if self.agreement_source == "logits":
      first, second = outputs[F.CTR_LOGIT], outputs[F.CVR_LOGIT]
    else:
      first, second = ctr_loss, ctcvr_loss
    rows = lambda g: tf.reshape(g, [tf.shape(g)[0], -1])
    return tf.stop_gradient(per_example_cosine(
        rows(tape.gradient(first, shared, unconnected_gradients=ZERO)),
        rows(tape.gradient(second, shared, unconnected_gradients=ZERO))))

  def gradient_agreement(self, features, labels) -> tf.Tensor:
    """Measured agreement per instance `[b]` (diagnostics, inference mode).

    Touches no metric and no variable, so it may run in any context (a
    callback outside the distribution strategy, evaluation).
    """
    x, x_cvr = self._embed(features)
    with tf.GradientTape(persistent=True) as tape:
      tap, shared = self._shared_tap(tape, x)
      outputs = self._heads(x, x_cvr, False, tap)
      ctr_loss = bce_with_logits(labels[F.CLICK], outputs[F.CTR_LOGIT])
      ctcvr_loss = bce_with_logits(labels[F.CONVERSION],
                                   outputs[F.CTCVR_LOGIT])
    agreement = self._agreement(tape, shared[0], outputs, ctr_loss,
                                ctcvr_loss)
    del tape
    return agreement

  def _per_example_losses(self, inputs, training: bool):
    """Per-example total loss `[b]` (unscaled) and the local outputs."""
    features, labels = inputs[0], inputs[1]
    agreement_mode = (self.alignment is not None
                      and self.relatedness_signal == "gradient_agreement")
    ctr_loss, ctcvr_loss, outputs, x, agreement = self._task_losses(
        features, labels, training, probe_agreement=agreement_mode)
    click = labels[F.CLICK][:, None]
    conversion = labels[F.CONVERSION][:, None]
    self.cvr_task(conversion, outputs[F.CVR_LOGIT][:, None],
                  sample_weight=click)
    total = ctr_loss + ctcvr_loss
    if self.transfer is not None and self.calibration_weight > 0:
      total += self.calibration_weight * behavioural_calibration(
          outputs[F.CTR_LOGIT], outputs[F.CTCVR_LOGIT])
    if self.alignment is not None:
      u, v, tau = self.alignment(x, outputs[F.H_CTR], outputs[F.H_CVR],
                                 training=training)
      if agreement_mode:
        # f learns the agreement; InfoNCE must not train it, so tau is fixed
        # for the contrastive term.
        logit = self.alignment.relatedness_logit(
            x, outputs[F.H_CTR], outputs[F.H_CVR], training=training)
        tau = tf.stop_gradient(self.alignment.relatedness.tau_from_logit(logit))
        total += self.relatedness_loss_weight * relatedness_regression_loss(
            agreement, logit)
        self.agreement_tracker.update_state(agreement)
      outputs[F.TAU] = tau
      step = self.optimizer.iterations if training else None
      total += self.contrastive_weight * self.contrastive(u, v, tau, step=step)
    return total, outputs

  def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
    """Scalar loss for this replica: sum / global batch + scaled regularisers."""
    per_example, _ = self._per_example_losses(inputs, training)
    regularization = tf.add_n(self.losses) if self.losses else 0.0
    self.loss_tracker.update_state(per_example + regularization)
    return (tf.nn.compute_average_loss(per_example)
            + tf.nn.scale_regularization_loss(regularization))

  def train_step(self, inputs):
    # Return exactly self.metrics: extra keys defeat Keras's cross-worker sync.
    with tf.GradientTape() as tape:
      loss = self.compute_loss(inputs, training=True)
    # minimize() scales the loss and unscales the gradients when the
    # optimizer is a LossScaleOptimizer (mixed_float16).
    self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
    return {metric.name: metric.result() for metric in self.metrics}

  def test_step(self, inputs):
    self.compute_loss(inputs, training=False)
    return {metric.name: metric.result() for metric in self.metrics}


def build_backbone(config: Config):
  """The shared part named by `config.model.backbone` (two task outputs)."""
  m, seed = config.model, config.train.seed
  units = tuple(m.expert_units)
  if m.backbone == "mmoe":
    return MMoE(m.num_experts, units, num_tasks=2, dropout=m.dropout,
                seed=seed, name="mmoe")
  if m.backbone == "ple":
    return PLE(m.ple_levels, m.ple_shared_experts, m.ple_task_experts, units,
               num_tasks=2, dropout=m.dropout, seed=seed, name="ple")
  if m.backbone == "shared_bottom":
    return SharedBottom(units, num_tasks=2, dropout=m.dropout, seed=seed,
                        name="shared_bottom")
  if m.backbone in ("shared_embedding", "single_task"):
    return TaskBottoms(units, num_tasks=2, dropout=m.dropout, seed=seed,
                       name="task_bottoms")
  raise ValueError(f"unknown backbone {m.backbone!r}; valid: "
                   f"{config_lib.BACKBONES}")


def build_model(config: Config, schema: F.FeatureSchema) -> CtrCvrModel:
  """Builds the model named by `config.model.name` for `schema`."""
  config.validate()
  m, l, seed = config.model, config.loss, config.train.seed
  encoder = FeatureEncoder(schema.to_dict(),
                           non_finite=config.data.non_finite_policy,
                           name="feature_encoder")
  embedding = FieldEmbedding(schema.categorical_sizes, len(schema.numerical),
                             m.embedding_dim, l2=m.embedding_l2, seed=seed,
                             name="field_embedding")
  towers = [TaskTower(tuple(m.tower_units), dropout=m.dropout, seed=seed + k,
                      name=f"{task}_tower")
            for k, task in enumerate(("ctr", "cvr"))]
  alignment = contrastive = None
  if m.name == "adaftr" and l.contrastive_weight > 0:
    alignment = TaskAlignment(
        l.projection_hidden, l.projection_dim, tuple(l.relatedness_units),
        l.tau_min, l.tau_max, temperature_mode=l.temperature_mode,
        fixed_tau=l.fixed_tau, relatedness_input=l.relatedness_input,
        relatedness_stop_gradient=l.relatedness_stop_gradient, seed=seed,
        name="alignment")
    contrastive = ContrastiveTask(symmetric=l.symmetric, negatives=l.negatives,
                                  cross_replica=l.cross_replica_negatives,
                                  seed=seed, name="contrastive")
  cvr_embedding = None
  if m.backbone == "single_task":
    cvr_embedding = FieldEmbedding(
        schema.categorical_sizes, len(schema.numerical), m.embedding_dim,
        l2=m.embedding_l2, seed=seed + 7, name="cvr_field_embedding")
  transfer = None
  if m.name == "aitm":
    transfer = AttentionTransfer(m.tower_units[-1], seed=seed, name="ait")
  model = CtrCvrModel(encoder, embedding, build_backbone(config), towers[0],
                      towers[1], alignment=alignment, contrastive=contrastive,
                      contrastive_weight=l.contrastive_weight,
                      cvr_embedding=cvr_embedding, transfer=transfer,
                      calibration_weight=m.aitm_calibration_weight,
                      relatedness_signal=l.relatedness_signal,
                      relatedness_loss_weight=l.relatedness_loss_weight,
                      agreement_source=l.agreement_source,
                      agreement_representation=l.agreement_representation,
                      name=m.name)
  return model


def compile_model(model: CtrCvrModel, config: Config) -> CtrCvrModel:
  model.compile(optimizer=build_optimizer(config),
                steps_per_execution=config.train.steps_per_execution,
                jit_compile=config.train.jit_compile)
  return model
