"""The config sections but the loss: data (and its synthetic log), model,
train, runtime. Each validates itself; choices come from adaftr_tf.choices."""

from __future__ import annotations

import dataclasses

from adaftr_tf import choices as C
from adaftr_tf.config.checks import ConfigError
from adaftr_tf.config.checks import positive as _positive
from adaftr_tf.config.checks import service_address
from adaftr_tf.config.checks import units as _units


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """The embedded synthetic impression log (pipelines/data/synthetic.py):
  rows per split, field counts (AliExpress: 16 + 63), raw ids per field, the
  mean click and post-click purchase rates, the latent preference size, the
  signal strength in both logits (higher: more learnable), TFRecord files per
  split, the seed the whole log is a function of, and the world's task
  relatedness (`planted`, or the controls r = 1 `one`, r = 0 `zero`)."""

  num_train: int = 400_000
  num_valid: int = 50_000
  num_test: int = 100_000
  num_categorical: int = 16
  num_numerical: int = 63
  vocab_size: int = 100
  click_rate: float = 0.05
  cvr_rate: float = 0.1
  latent_dim: int = 8
  signal_scale: float = 2.0
  num_shards: int = 4
  seed: int = 7
  relatedness: C.RelatednessWorld = "planted"

  def validate(self, prefix: str = "data.synthetic") -> None:
    C.check_fields(self, ConfigError, prefix)
    _positive(self, prefix, "num_train", "num_valid", "num_test",
              "vocab_size", "latent_dim", "num_shards")
    _positive(self, prefix, "num_categorical", "num_numerical",
              allow_zero=True)
    if self.num_categorical + self.num_numerical < 1:
      raise ConfigError(f"{prefix} needs at least one categorical or "
                        "numerical field")
    for key in ("click_rate", "cvr_rate"):
      if not 0.0 < getattr(self, key) < 1.0:
        raise ConfigError(f"{prefix}.{key}={getattr(self, key)} must lie in "
                          "(0, 1)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the rows come from.

  Attributes:
    source: `synthetic` (generated when missing) or `files` (converted).
    synthetic: the generated log's settings.
    shuffle_buffer: rows in the training shuffle buffer (`blocks`: rows
      of the block-level buffer; windows of half as many rows are drawn
      from it and their rows mixed).
    layout, block_rows: how the synthetic generator writes its records:
      `blocks` (column-wise blocks of `block_rows` rows, read a block at a
      time; the default) or `rows` (one tf.train.Example per row). The
      reader follows whatever a data directory records.
    non_finite_policy: a NaN/Inf numerical value (training and serving,
      `preprocessing.FeatureEncoder`): `error` names field and row; `replace`
      uses the field's default, counted in the `non_finite_replaced` metric.
    group_field: the row key or single-valued categorical field whose
      values group the rows for GAUC and the calibration by segment
      (evaluation.py); checked against the data's schema before training
      (models.build_model). `auto`: AliExpress's search session
      `search_id` (a row key the converter keeps beside the features);
      else Ali-CCP's user id `f101`; else `categorical_1` -- the synthetic
      log's designated user (all its fields are Zipf-popular ids; the first
      stands for the user, so the log is unchanged); else the data's first
      row key or single-valued categorical field.
    service: a tf.data service dispatcher, `grpc://HOST:PORT` or
      `HOST:PORT` (pipelines/data/service.py): its workers read, decode,
      shuffle and batch the training input, every row once per pass; ""
      (default): the training process reads its input itself.
  """

  source: C.DataSource = "synthetic"
  synthetic: SyntheticConfig = SyntheticConfig()
  shuffle_buffer: int = 100_000
  layout: C.RecordLayout = "blocks"
  block_rows: int = 4096
  non_finite_policy: C.NonFinitePolicy = "error"
  group_field: str = "auto"
  service: str = ""

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "data")
    if self.service:
      service_address(self.service, "data.service")
    self.synthetic.validate()
    _positive(self, "data", "shuffle_buffer", "block_rows")
    if not isinstance(self.group_field, str) or not self.group_field.strip():
      raise ConfigError(f"data.group_field={self.group_field!r} must name a "
                        "categorical field of the data, or be auto")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The architecture.

  Attributes:
    name, backbone: the method family and the shared part (choices.py).
    objective: the main objective over the two tasks (adaftr_tf/objective.py):
      `funnel` (CTR -> CVR), `independent` (two binary tasks, one BCE
      each over every row) or `auto` (the data's `label_relation`).
    embedding_dim, num_experts: per-field embedding width; MMoE experts.
    expert_units: each expert's (MMoE, PLE) or bottom MLP's hidden layers.
    tower_units: each tower's hidden layers; the last gives h_ctr / h_cvr.
    dropout, embedding_l2: in experts and towers; on the batch's rows.
    ple_levels, ple_shared_experts, ple_task_experts: PLE layout.
    projection_dim, projection_hidden, relatedness_units: the alignment's
      projection heads and relatedness network.
    click_gate: the CVR logit adds the stop-gradient CTR logit times an
      instance-specific learned slope (layers/heads.py); not with `aitm`.
  """

  name: C.ModelName = "adaftr"
  backbone: C.Backbone = "mmoe"
  embedding_dim: int = 8
  num_experts: int = 4
  expert_units: tuple[int, ...] = (128, 64)
  tower_units: tuple[int, ...] = (64, 32)
  dropout: float = 0.0
  embedding_l2: float = 0.0
  ple_levels: int = 2
  ple_shared_experts: int = 2
  ple_task_experts: int = 1
  projection_dim: int = 16
  projection_hidden: int = 32
  relatedness_units: tuple[int, ...] = (32,)
  click_gate: bool = False
  objective: C.Objective = "auto"

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "model")
    _positive(self, "model", "embedding_dim", "num_experts", "ple_levels",
              "ple_task_experts", "projection_dim", "projection_hidden")
    _positive(self, "model", "ple_shared_experts", "embedding_l2",
              allow_zero=True)
    _units(self, "model", "expert_units", "tower_units")
    _units(self, "model", "relatedness_units", allow_empty=True)
    if not 0.0 <= self.dropout < 1.0:
      raise ConfigError(f"model.dropout={self.dropout} must lie in [0, 1)")
    if self.click_gate and self.name == "aitm":
      raise ConfigError("model.click_gate=true needs the ESMM heads; "
                        "model.name=aitm predicts CTCVR directly (choose "
                        "model.name=multitask or adaftr)")
    if self.objective == "independent" and self.name == "aitm":
      raise ConfigError("model.objective=independent needs the ESMM heads; "
                        "model.name=aitm predicts the funnel's CTCVR (choose "
                        "model.name=multitask or adaftr)")

  @property
  def has_shared_experts(self) -> bool:
    """Whether the backbone has a shared tensor every task reads."""
    return self.backbone in ("mmoe", "shared_bottom") or (
        self.backbone == "ple" and self.ple_shared_experts >= 1)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation, epochs and checkpoints.

  Attributes:
    batch_size, eval_batch_size: training (remainders dropped), evaluation.
    epochs, steps_per_epoch: at most; steps capped (None: the whole split).
    learning_rate, optimizer: `lazy_adam` updates only the batch's rows.
    steps_per_execution: steps per tf.function call.
    checkpoint_metric, early_stopping_patience: the validation metric that
      picks the best epoch (`auto`: CTCVR AUC for the funnel, the mean task
      AUC for independent tasks); epochs without improvement before
      stopping (0: never).
    seed: initialisation and shuffling seed.
    checkpoint_every_steps: step checkpoints for exact resume (0: at epoch
      ends), checked after each `steps_per_execution` group.
    lr_schedule, warmup_fraction: `constant`, or `warmup_cosine` (a linear
      warm-up over the first `warmup_fraction` of the steps, then a cosine
      decay to 0 at the last step).
    ema_momentum: > 0 validates, keeps and exports an exponential moving
      average of the weights (`avg = m avg + (1 - m) w` per step) instead of
      the weights themselves; 0 (default) turns it off.
    calibration: post-hoc calibration of each task fitted on the validation
      split after training (adaftr_tf/calibration.py): `platt`, `isotonic`
      or `none`; the export serves the calibrated probabilities.
    folds, holdout_fold: cross-fitting (adaftr_tf/folds.py): the training
      rows of fold `holdout_fold` (of `folds` >= 2, fixed per row by its
      features) add nothing to the training loss, so a teacher trained so
      never learns from them (`loss.teacher_dir` lists one per fold). The
      training metrics still count them; validation is unchanged. 0 and
      None: every row trains.
  """

  batch_size: int = 1024
  eval_batch_size: int = 8192
  epochs: int = 3
  steps_per_epoch: int | None = None
  learning_rate: float = 0.002
  optimizer: C.Optimizer = "adam"
  steps_per_execution: int = 20
  checkpoint_metric: C.CheckpointMetric = "auto"
  early_stopping_patience: int = 0
  seed: int = 42
  checkpoint_every_steps: int = 100
  calibration: C.CalibrationMethod = "platt"
  lr_schedule: C.LearningRateSchedule = "constant"
  warmup_fraction: float = 0.05
  ema_momentum: float = 0.0
  folds: int = 0
  holdout_fold: int | None = None

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "train")
    if self.folds == 0 and self.holdout_fold is not None:
      raise ConfigError(f"train.holdout_fold={self.holdout_fold} needs "
                        "train.folds >= 2")
    if self.folds != 0 and (self.folds < 2 or self.holdout_fold is None
                            or not 0 <= self.holdout_fold < self.folds):
      raise ConfigError(f"train.folds={self.folds} needs folds >= 2 and "
                        "train.holdout_fold in [0, folds) (got "
                        f"{self.holdout_fold}); folds=0 trains on every row")
    for name in ("warmup_fraction", "ema_momentum"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ConfigError(f"train.{name}={getattr(self, name)} must lie in "
                          "[0, 1)")
    _positive(self, "train", "batch_size", "eval_batch_size", "epochs",
              "learning_rate", "steps_per_execution")
    if self.steps_per_epoch is not None:
      _positive(self, "train", "steps_per_epoch")
    _positive(self, "train", "early_stopping_patience",
              "checkpoint_every_steps", allow_zero=True)


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """Devices, distribution, precision and determinism.

  Attributes:
    strategy: the tf.distribute engine (pipelines/training/distribute.py).
    cross_replica_negatives: synchronous replicas draw `in_batch` negatives
      from the global batch (all-gathered: the same loss as one device).
    mixed_precision, jit_compile: Keras dtype policy (losses stay float32);
      XLA for the train and test steps.
    deterministic: op determinism (same seeds, same runs); process-wide.
    ps_min_shard_bytes: `parameter_server` shards larger variables.
  """

  strategy: C.Strategy = "default"
  cross_replica_negatives: bool = True
  mixed_precision: C.Precision = "float32"
  jit_compile: bool = False
  deterministic: bool = False
  ps_min_shard_bytes: int = 256 << 10

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "runtime")
    _positive(self, "runtime", "ps_min_shard_bytes")
    if self.strategy != "parameter_server":
      return
    if self.mixed_precision == "mixed_float16":
      raise ConfigError("runtime.mixed_precision=mixed_float16 needs loss "
                        "scaling, which runtime.strategy=parameter_server "
                        "lacks; use mixed_bfloat16 or another strategy")
    if self.deterministic:
      raise ConfigError("runtime.deterministic=true cannot hold under "
                        "runtime.strategy=parameter_server (asynchronous "
                        "workers); use a synchronous strategy")
