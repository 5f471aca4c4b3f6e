"""The joint CTR/CVR model; `build_model(config, schema)` reads the config.

Forward pass (DESIGN.md §1) for B impressions of F fields: raw features
--FeatureEncoder--> ids, numerical --FieldEmbedding--> x [B, F*D]
--backbone--> ctr_in, cvr_in [B, E] --TaskHeads--> logits a, b, z [B] and
representations h_ctr, h_cvr [B, H]; p_ctr = σ(a), p_cvr = σ(b), p_ctcvr = σ(z).
Loss per impression: the main task's two losses (FunnelTask, or
IndependentTask for two independent binary tasks: adaftr_tf/objective.py;
then a and b are the first and second task's logits) plus each
auxiliary objective's (tasks/), averaged over the *global* batch
(`tf.nn.compute_average_loss`), so gradients are right under tf.distribute.
"""

from __future__ import annotations

import contextlib
from typing import Mapping, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from adaftr_tf import evaluation
from adaftr_tf import features as F
from adaftr_tf import folds as folds_lib
from adaftr_tf import objective as objective_lib
from adaftr_tf import optimizers
from adaftr_tf.config import Config
from adaftr_tf.layers import PLE, FieldEmbedding, MMoE, SharedBottom
from adaftr_tf.layers import factored
from adaftr_tf.layers.alignment import TaskAlignment
from adaftr_tf.layers.heads import TaskHeads
from adaftr_tf.layers.task_bottoms import TaskBottoms
from adaftr_tf.optimizers import build_optimizer
from adaftr_tf.optimizers import learning_rate_schedule
from adaftr_tf.preprocessing import FeatureEncoder
from adaftr_tf.tasks import AgreementProbe
from adaftr_tf.tasks import AlignmentTask
from adaftr_tf.tasks import CalibrationTask
from adaftr_tf.tasks import ContrastiveTask
from adaftr_tf.tasks import FunnelTask
from adaftr_tf.tasks import IndependentTask
from adaftr_tf.tasks import meta_gradient


class CtrCvrModel(tfrs.models.Model):
  """Embed -> backbone -> heads -> outputs, trained on a task plus objectives.

  Args:
    encoder, embedding: FeatureEncoder, FieldEmbedding.
    backbone: x `[B, F*D]` (with `cvr_embedding`: [x, x_cvr]) -> the two task
      inputs; takes `tap` (layers/experts.py). heads: TaskHeads.
    task: the main objective (FunnelTask, IndependentTask): (labels,
      outputs) -> the two tasks' per-example losses, summed into the loss.
    objectives: auxiliary objectives (tasks/__init__.py), each adding its
      per-example loss and extra outputs (AlignmentTask: tau).
    probe: AgreementProbe, measured for the objectives that need it and for
      diagnostics. cvr_embedding: single-task's CVR FieldEmbedding, or None.
    objective: what `task` optimises and the names it reports and serves
      (objective.Objective; default the funnel).
    holdout: (folds, fold): the training rows of that fold (adaftr_tf/folds.py)
      add nothing to the training loss (a cross-fitted teacher); None:
      every row trains.
  """

  def __init__(self, encoder, embedding, backbone, heads, task,
               objectives: Sequence[tf_keras.layers.Layer] = (),
               probe: AgreementProbe | None = None, cvr_embedding=None,
               objective: objective_lib.Objective = (
                   objective_lib.FUNNEL_OBJECTIVE),
               holdout: tuple[int, int] | None = None, **kwargs):
    super().__init__(**kwargs)
    self.objective = objective
    self.holdout = holdout
    self.encoder, self.embedding = encoder, embedding
    self.cvr_embedding = cvr_embedding
    self.backbone, self.heads, self.task = backbone, heads, task
    self.objectives = list(objectives)
    self.probe = probe or AgreementProbe()
    self.loss_tracker = tf_keras.metrics.Mean(name="loss")

  @property
  def alignment_task(self) -> AlignmentTask | None:
    """The AdaFTR alignment objective, if the model has one."""
    return next((o for o in self.objectives if isinstance(o, AlignmentTask)),
                None)

  @property
  def shared_variables(self) -> list[tf.Variable]:
    """The trainable variables of the prediction path (embeddings, backbone,
    heads): every trainable variable but the auxiliary objectives' own."""
    own = {id(v) for o in self.objectives for v in o.trainable_variables}
    return [v for v in self.trainable_variables if id(v) not in own]

  def _embed(self, features: Mapping[str, tf.Tensor]):
    """Flattened embeddings x `[B, F*D]` (and x_cvr for single-task, else None)."""
    ids, numerical = self.encoder(features)
    x = tf.reshape(self.embedding(ids, numerical), [-1, self.embedding.output_dim])
    if self.cvr_embedding is None:
      return x, None
    return x, tf.reshape(self.cvr_embedding(ids, numerical),
                         [-1, self.cvr_embedding.output_dim])

  def _predict(self, x, x_cvr, training, tap=None):
    """The outputs from the embeddings (no tau)."""
    inputs = x if x_cvr is None else [x, x_cvr]
    ctr_in, cvr_in = factored.call_layer(self.backbone, inputs,
                                         training=training, tap=tap)
    (a, b, z), (h_ctr, h_cvr) = self.heads(ctr_in, cvr_in, training=training)
    return {F.CTR_LOGIT: a, F.CVR_LOGIT: b, F.CTCVR_LOGIT: z,
            F.CTR: tf.sigmoid(a), F.CVR: tf.sigmoid(b),
            F.CTCVR: tf.sigmoid(z), F.H_CTR: h_ctr, F.H_CVR: h_cvr}

  def _factored_inputs(self, features: Mapping[str, tf.Tensor]):
    """The backbone's input as `FactoredFields` (layers/factored.py), or
    None for a model not built, without numerical fields, with a second
    (single-task) embedding, or not computing in float32."""
    if (self.cvr_embedding is not None or not self.embedding.built or
        not self.backbone.built or not self.embedding.num_numerical or
        self.embedding.compute_dtype != "float32"):
      return None
    return self.embedding.factored(*self.encoder(features))

  def call(self, features: Mapping[str, tf.Tensor], training=None,
           factored_inputs: bool = False):
    """The output dict: probabilities, logits, h_ctr, h_cvr (and tau).

    With `factored_inputs` (serving only: Keras's SavedModel export traces
    the default call layer by layer, with tensors) the backbone reads the
    embeddings factored where it can (`_factored_inputs`); the objectives
    always read them dense.
    """
    folded = (self._factored_inputs(features)
              if factored_inputs and not training else None)
    if folded is None:
      x, x_cvr = self._embed(features)
      outputs = self._predict(x, x_cvr, training)
    else:   # the objectives read x
      x, outputs = folded.dense(), self._predict(folded, None, training)
    for objective in self.objectives:
      outputs.update(objective.inference_outputs(x, outputs,
                                                 training=training))
    return outputs

  def instance_tau(self, features: Mapping[str, tf.Tensor],
                   min_field_share: float = 0.0) -> tf.Tensor:
    """`call`'s tau `[batch]` (a teacher's) from what f reads only;
    `min_field_share` > 0 overrides the model's own field share."""
    task = self.alignment_task
    if task is None or task.tau_source != "network":
      raise ValueError("instance_tau needs model.name=adaftr with "
                       "loss.tau_source=network")
    if task.alignment.reads_towers and not min_field_share:
      return self(features, training=False)[F.TAU]
    x, _ = self._embed(features)
    return task.embeddings_tau(x, min_field_share or None)

  def _task_losses(self, features, labels, training, measure: bool,
                   losses=None):
    """(first loss `[b]`, second loss `[b]`, outputs, x, agreement or None).

    `losses(labels, outputs)` computes the two losses (default: the task,
    which updates its metrics); with `measure`, the probe records them.
    """
    losses = losses or self.task
    x, x_cvr = self._embed(features)
    with (self.probe.record(x) if measure
          else contextlib.nullcontext()) as recording:
      outputs = self._predict(x, x_cvr, training,
                              recording.tap if measure else None)
      first, second = losses(labels, outputs)
    agreement = (recording.agreement(outputs, first, second) if measure
                 else None)
    return first, second, outputs, x, agreement

  def gradient_agreement(self, features, labels) -> tf.Tensor:
    """Measured agreement per instance `[b]` (diagnostics, inference mode):
    touches no metric and no variable, so it may run in any context."""
    return self._task_losses(features, labels, False, True,
                             self.task.plain_losses)[-1]

  def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
    """Scalar loss for this replica: sum / global batch + scaled regularisers."""
    features, labels = inputs[0], inputs[1]
    oracle = inputs[2] if len(inputs) > 2 else None   # synthetic data only
    measure = any(o.needs_agreement for o in self.objectives)
    record = training and any(o.needs_recording for o in self.objectives)
    with (meta_gradient.recording() if record
          else contextlib.nullcontext()) as meta:
      first, second, outputs, x, agreement = self._task_losses(
          features, labels, training, measure)
    if record:
      meta.variables = self.shared_variables
    per_example = first + second
    step = self.optimizer.iterations if training else None
    for objective in self.objectives:
      loss, extra = objective(x, outputs, labels, agreement=agreement,
                              step=step, training=training,
                              features=features, oracle=oracle, meta=meta)
      per_example += loss
      outputs.update(extra)
    if training and self.holdout is not None:
      folds, fold = self.holdout
      per_example *= tf.cast(folds_lib.row_fold(features, folds) != fold,
                             per_example.dtype)
    regularization = tf.add_n(self.losses) if self.losses else 0.0
    self.loss_tracker.update_state(per_example + regularization)
    return (tf.nn.compute_average_loss(per_example)
            + tf.nn.scale_regularization_loss(regularization))

  def train_step(self, inputs):
    # Return exactly self.metrics: extra keys defeat Keras's cross-worker sync.
    with tf.GradientTape() as tape:
      loss = self.compute_loss(inputs, training=True)
    optimizers.minimize(self.optimizer, loss, self.trainable_variables, tape)
    return {metric.name: metric.result() for metric in self.metrics}

  def test_step(self, inputs):
    self.compute_loss(inputs, training=False)
    return {metric.name: metric.result() for metric in self.metrics}


def build_backbone(config: Config):
  """The shared part named by `config.model.backbone` (two task outputs)."""
  m, seed = config.model, config.train.seed
  units, common = tuple(m.expert_units), dict(num_tasks=2, dropout=m.dropout,
                                              seed=seed)
  if m.backbone == "mmoe":
    return MMoE(m.num_experts, units, name="mmoe", **common)
  if m.backbone == "ple":
    return PLE(m.ple_levels, m.ple_shared_experts, m.ple_task_experts, units,
               name="ple", **common)
  if m.backbone == "shared_bottom":
    return SharedBottom(units, name="shared_bottom", **common)
  return TaskBottoms(units, name="task_bottoms", **common)  # ESMM, single-task


def build_objectives(config: Config, objective: objective_lib.Objective = (
    objective_lib.FUNNEL_OBJECTIVE)) -> list[tf_keras.layers.Layer]:
  """The auxiliary objectives `config` asks for (AITM's, AdaFTR's), for the
  main `objective`."""
  m, l, seed = config.model, config.loss, config.train.seed
  objectives = []
  if config.uses_transfer and l.aitm_calibration_weight > 0:
    objectives.append(CalibrationTask(l.aitm_calibration_weight,
                                      name="calibration"))
  if config.uses_alignment:
    alignment = TaskAlignment(
        m.projection_hidden, m.projection_dim, tuple(m.relatedness_units),
        l.tau_min, l.tau_max, temperature_mode=(
            l.temperature_mode if l.tau_source == "network" else "fixed"),
        fixed_tau=l.fixed_tau, relatedness_input=l.relatedness_input,
        relatedness_stop_gradient=l.relatedness_stop_gradient, seed=seed,
        name="alignment")
    contrastive = ContrastiveTask(
        symmetric=l.symmetric, negatives=l.negatives, seed=seed,
        cross_replica=config.runtime.cross_replica_negatives, name="contrastive")
    objectives.append(AlignmentTask(
        alignment, contrastive, l.contrastive_weight, l.relatedness_signal,
        l.relatedness_loss_weight, tau_source=l.tau_source,
        tau_field=l.tau_field, seed=seed, one_way=l.one_way,
        oracle_noise=l.oracle_noise, funnel=objective.kind == F.FUNNEL,
        meta_every=l.meta_gradient_every, start=l.alignment_start,
        gate_quantile=l.gate_quantile, field_dim=m.embedding_dim,
        field_share=l.gate_field_share, name="alignment_task"))
  return objectives


def build_model(config: Config, schema: F.FeatureSchema,
                objectives: Sequence[tf_keras.layers.Layer] | None = None,
                task: tf_keras.layers.Layer | None = None) -> CtrCvrModel:
  """The model `config` describes, for `schema`.

  `objectives` and `task` replace the ones `config` asks for (benchmark
  variants, pipelines/benchmarks/speed/prototypes.py).
  """
  config.validate()
  m, seed = config.model, config.train.seed
  objective = resolve_objective(config, schema)
  fields = [f.name for f in schema.categorical]
  if config.loss.tau_source in ("field_hash", "noisy_oracle") and (
      config.loss.tau_field not in fields):
    raise ValueError(f"loss.tau_field={config.loss.tau_field!r} is not a "
                     f"categorical field of the data; choose one of {fields}")
  evaluation.group_field(config.data.group_field, schema)  # one-line error
  hashed = [f.name for f in schema.categorical if f.encoding == "hash"]
  if config.runtime.jit_compile and hashed:
    raise ValueError(f"runtime.jit_compile=true cannot compile the string "
                     f"hash of the hash-encoded fields {hashed}; train "
                     "without XLA, or convert the data with vocabularies")
  encoder = FeatureEncoder(schema.to_dict(),
                           non_finite=config.data.non_finite_policy,
                           name="feature_encoder")

  def embedding(seed_offset: int, name: str) -> FieldEmbedding:
    return FieldEmbedding(schema.categorical_sizes, len(schema.numerical),
                          m.embedding_dim, l2=m.embedding_l2,
                          seed=seed + seed_offset, name=name)

  return CtrCvrModel(
      encoder, embedding(0, "field_embedding"), build_backbone(config),
      TaskHeads(m.tower_units, dropout=m.dropout,
                transfer=config.uses_transfer, seed=seed,
                click_gate=m.click_gate, name="heads"),
      task or main_task(objective),
      build_objectives(config, objective) if objectives is None
      else objectives,
      AgreementProbe(config.loss.agreement_source,
                     config.loss.agreement_representation),
      embedding(7, "cvr_field_embedding")
      if m.backbone == "single_task" else None, objective=objective,
      holdout=((config.train.folds, config.train.holdout_fold)
               if config.train.folds else None),
      name=m.name)


def resolve_objective(config: Config,
                      schema: F.FeatureSchema) -> objective_lib.Objective:
  """The objective `config` trains on data with `schema`, its checkpoint
  metric checked (ValueError naming the valid choices)."""
  objective = objective_lib.resolve(config.model.objective, schema)
  if objective.kind == F.INDEPENDENT and config.uses_transfer:
    raise ValueError("independent tasks need the ESMM heads; model.name=aitm "
                     "predicts the funnel's CTCVR (choose model.name="
                     "multitask or adaftr)")
  objective.checkpoint_metric(config.train.checkpoint_metric)
  return objective


def main_task(objective: objective_lib.Objective) -> tf_keras.layers.Layer:
  """The layer computing `objective`'s two per-example losses."""
  if objective.kind == F.INDEPENDENT:
    return IndependentTask(tuple(r.name for r in objective.reported),
                           name="independent")
  return FunnelTask(name="funnel")


def compile_model(model: CtrCvrModel, config: Config,
                  total_steps: int | None = None) -> CtrCvrModel:
  """Compiles `model` with `config`'s optimizer (`total_steps`: the run's
  training steps, for a schedule or an alignment start that needs them)."""
  t = config.train
  model.compile(optimizer=build_optimizer(t.optimizer, learning_rate_schedule(
      t.learning_rate, t.lr_schedule, total_steps, t.warmup_fraction),
                                         ema_momentum=t.ema_momentum),
                steps_per_execution=config.train.steps_per_execution,
                jit_compile=config.runtime.jit_compile)
  if model.alignment_task is not None:
    model.alignment_task.set_total_steps(total_steps)
  return model
