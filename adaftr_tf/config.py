"""Run configuration: frozen dataclasses, one validator per section.

`Config` has five sections: `data`, `model`, `loss`, `train` and `runtime`.
Choice fields have the Literal types of `adaftr_tf.choices`. Named configs:
experiments.py; `key=value` overrides: overrides.py. A run's final config is
written as JSON next to its checkpoints and into the SavedModel's assets.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping

from adaftr_tf import choices as C


class ConfigError(ValueError):
  """An invalid or contradictory setting, an unknown key or experiment."""


def _positive(section, prefix: str, *keys: str,
              allow_zero: bool = False) -> None:
  """Each named field of `section` is > 0 (>= 0 with allow_zero), finite."""
  for key in keys:
    value = getattr(section, key)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
      raise ConfigError(f"{prefix}.{key}={value!r} must be "
                        f"{'>= 0' if allow_zero else '> 0'}")


def _units(section, prefix: str, *keys: str, allow_empty=False) -> None:
  """Each named field of `section` is a tuple of positive ints."""
  for key in keys:
    value = getattr(section, key)
    if (not value and not allow_empty) or any(u <= 0 for u in value):
      raise ConfigError(f"{prefix}.{key}={value} must be a "
                        f"{'' if allow_empty else 'non-empty '}tuple of "
                        "positive ints")


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
    shuffle_buffer: records in the training shuffle buffer.
    non_finite_policy: a NaN/Inf numerical value (training and serving,
      `preprocessing.FeatureEncoder`): `error` names field and row; `replace`
      uses the field's default, counted in the `non_finite_replaced` metric.
  """

  source: C.DataSource = "synthetic"
  synthetic: SyntheticConfig = SyntheticConfig()
  shuffle_buffer: int = 100_000
  non_finite_policy: C.NonFinitePolicy = "error"

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "data")
    self.synthetic.validate()
    _positive(self, "data", "shuffle_buffer")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The architecture.

  Attributes:
    name, backbone: the method family and the shared part (choices.py).
    embedding_dim, num_experts: per-field embedding width; MMoE experts.
    expert_units: each expert's (MMoE, PLE) or bottom MLP's hidden layers.
    tower_units: each tower's hidden layers; the last gives h_ctr / h_cvr.
    dropout, embedding_l2: in experts and towers; on the batch's rows.
    ple_levels, ple_shared_experts, ple_task_experts: PLE layout.
    projection_dim, projection_hidden, relatedness_units: the alignment's
      projection heads and relatedness network.
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

  @property
  def has_shared_experts(self) -> bool:
    """Whether the backbone has a shared tensor every task reads."""
    return self.backbone in ("mmoe", "shared_bottom") or (
        self.backbone == "ple" and self.ple_shared_experts >= 1)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The objective `L = L_ctr + L_ctcvr + contrastive_weight * L_cl (+ ...)`.

  Attributes:
    contrastive_weight: lambda; 0 disables the alignment objective.
    temperature_mode, tau_min, tau_max, fixed_tau: tau per `instance`, one
      `global` or `fixed` (None: the bounds' geometric mean), in the bounds.
    relatedness_input, relatedness_stop_gradient: what the relatedness
      network reads (choices.py) and whether its gradient reaches it.
    symmetric, negatives: both InfoNCE directions; which negatives.
    relatedness_signal, relatedness_loss_weight: what trains the relatedness
      network and the weight of the agreement regression (losses/agreement.py).
    agreement_source, agreement_representation: the agreement is the cosine
      of the CTR and CVR `logits`' or CTCVR `losses`' gradients with respect
      to the `embeddings` or the shared `experts` outputs.
    aitm_calibration_weight: weight of AITM's behavioural calibrator.
    tau_source, tau_field: where tau comes from (choices.py: the relatedness
      network, or a training-only control from the planted r); `field_hash`
      hashes the id of the categorical field `tau_field`.
  """

  contrastive_weight: float = 0.1
  temperature_mode: C.TemperatureMode = "instance"
  tau_min: float = 0.05
  tau_max: float = 1.0
  fixed_tau: float | None = None
  relatedness_input: C.RelatednessInput = "embeddings"
  relatedness_stop_gradient: bool = True
  symmetric: bool = True
  negatives: C.Negatives = "in_batch"
  relatedness_signal: C.RelatednessSignal = "contrastive"
  relatedness_loss_weight: float = 1.0
  agreement_source: C.AgreementSource = "losses"
  agreement_representation: C.AgreementRepresentation = "embeddings"
  aitm_calibration_weight: float = 0.6
  tau_source: C.TauSource = "network"
  tau_field: str = "categorical_1"

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "loss")
    if self.tau_source != "network" and (
        self.temperature_mode != "instance"
        or self.relatedness_signal != "contrastive"):
      raise ConfigError(f"loss.tau_source={self.tau_source} sets tau per "
                        "instance without the relatedness network: it needs "
                        "loss.temperature_mode=instance and "
                        "loss.relatedness_signal=contrastive (the defaults)")
    _positive(self, "loss", "contrastive_weight", "relatedness_loss_weight",
              "aitm_calibration_weight", allow_zero=True)
    needs_mode = {"gradient_agreement": "instance", "fixed": "fixed"}.get(
        self.relatedness_signal)
    if needs_mode and self.temperature_mode != needs_mode:
      raise ConfigError(f"loss.relatedness_signal={self.relatedness_signal} "
                        f"needs loss.temperature_mode={needs_mode}, got "
                        f"{self.temperature_mode}")
    _positive(self, "loss", "tau_min")
    if not self.tau_min < self.tau_max:
      raise ConfigError(f"loss.tau_min={self.tau_min} must be < "
                        f"loss.tau_max={self.tau_max}")
    if self.fixed_tau is not None and not (
        self.tau_min <= self.fixed_tau <= self.tau_max):
      raise ConfigError(f"loss.fixed_tau={self.fixed_tau} must lie in "
                        f"[tau_min, tau_max] = [{self.tau_min}, "
                        f"{self.tau_max}]")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation, epochs and checkpoints.

  Attributes:
    batch_size, eval_batch_size: training (remainders dropped), evaluation.
    epochs, steps_per_epoch: at most; steps capped (None: the whole split).
    learning_rate, optimizer: `lazy_adam` updates only the batch's rows.
    steps_per_execution: steps per tf.function call.
    checkpoint_metric, early_stopping_patience: the validation metric that
      picks the best epoch; epochs without improvement before stopping (0:
      never).
    seed: initialisation and shuffling seed.
    checkpoint_every_steps: step checkpoints for exact resume (0: at epoch
      ends), checked after each `steps_per_execution` group.
  """

  batch_size: int = 1024
  eval_batch_size: int = 8192
  epochs: int = 3
  steps_per_epoch: int | None = None
  learning_rate: float = 0.002
  optimizer: C.Optimizer = "adam"
  steps_per_execution: int = 20
  checkpoint_metric: C.CheckpointMetric = "val_ctcvr_auc"
  early_stopping_patience: int = 0
  seed: int = 42
  checkpoint_every_steps: int = 100

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "train")
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


@dataclasses.dataclass(frozen=True)
class Config:
  """One run: data, model, loss, train and runtime sections."""

  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  train: TrainConfig = TrainConfig()
  runtime: RuntimeConfig = RuntimeConfig()

  @property
  def uses_alignment(self) -> bool:
    """AdaFTR's alignment objective is on (model `adaftr`, lambda > 0)."""
    return self.model.name == "adaftr" and self.loss.contrastive_weight > 0

  @property
  def needs_oracle(self) -> bool:
    """The loss reads the oracle columns (tau from the planted r)."""
    return self.uses_alignment and "oracle" in self.loss.tau_source

  @property
  def uses_transfer(self) -> bool:
    """AITM: the CVR tower reads the CTR tower, plus the calibrator."""
    return self.model.name == "aitm"

  def validate(self) -> "Config":
    """Returns self; ConfigError names the first invalid setting."""
    for section in (self.data, self.model, self.loss, self.train,
                    self.runtime):
      section.validate()
    if (self.loss.agreement_representation == "experts"
        and not self.model.has_shared_experts):
      raise ConfigError(
          "loss.agreement_representation=experts needs shared experts: "
          "model.backbone mmoe, shared_bottom, or ple with ple_shared_experts"
          f" >= 1 (got {self.model.backbone}, {self.model.ple_shared_experts})")
    if self.uses_alignment and self.train.batch_size < 2:
      raise ConfigError(f"train.batch_size={self.train.batch_size}: in-batch "
                        "negatives need a batch of at least 2")
    return self

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1, sort_keys=True)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "Config":
    from adaftr_tf import overrides  # it imports this module
    return overrides.from_dict(cls, data)  # ConfigError at a bad key/value

  @classmethod
  def from_json(cls, text: str) -> "Config":
    return cls.from_dict(json.loads(text))
