"""Run configuration: frozen dataclasses, presets, overrides and validation.

A run is described by one `Config` (data, model, loss, train, export). Presets
are named `Config`s; `apply_overrides` changes fields by dotted key
(`loss.tau_min=0.05`) with type checking, and `Config.validate` rejects
contradictory settings before any training starts. The final config of a run is
written as JSON (`Config.to_json`) next to its checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any, Mapping, Sequence

MODEL_NAMES = ("adaftr", "multitask", "aitm")
BACKBONES = ("mmoe", "ple", "shared_bottom", "shared_embedding", "single_task")
TEMPERATURE_MODES = ("instance", "global", "fixed")
RELATEDNESS_INPUTS = ("embeddings", "towers_detached")
NEGATIVES = ("in_batch", "random_one")
RELATEDNESS_SIGNALS = ("contrastive", "gradient_agreement", "fixed")
# What the gradient-agreement cosine compares (adaftr_tf/losses/agreement.py).
AGREEMENT_SOURCES = ("losses", "logits")
# With respect to what it is taken: the instance embeddings, or the tensor
# every task reads inside the backbone (layers/experts.py `tap`).
AGREEMENT_REPRESENTATIONS = ("embeddings", "experts")
OPTIMIZERS = ("adam", "lazy_adam", "adagrad")
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored",
              "parameter_server")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
CHECKPOINT_METRICS = ("val_ctcvr_auc", "val_ctr_auc", "val_cvr_auc", "val_loss")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """The embedded synthetic impression log (see pipelines/data/synthetic.py).

  Attributes:
    num_train, num_valid, num_test: rows per split.
    num_categorical, num_numerical: field counts (AliExpress: 16 + 63).
    vocab_size: raw ids per categorical field.
    click_rate: target mean click probability.
    cvr_rate: target mean purchase probability given a click.
    latent_dim: size of the hidden preference vectors.
    signal_scale: strength of the preference signal in both logits (higher =
      more learnable, higher oracle AUCs).
    num_shards: TFRecord files per split.
    seed: generation seed (the whole log is a function of it).
  """

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


# What a NaN or +-Inf numerical feature value does (data.non_finite_policy,
# `python -m pipelines.convert --non_finite`).
NON_FINITE_POLICIES = ("error", "replace")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the data comes from: `synthetic` (generated when missing) or `files`.

  Attributes:
    source: `synthetic` or `files` (converted data in --data_dir).
    synthetic: the generated log's settings.
    shuffle_buffer: records in the training shuffle buffer.
    non_finite_policy: a NaN or +-Inf numerical feature value reaching the
      model (training batches and serving requests alike, see
      `preprocessing.FeatureEncoder`): `error` stops with an
      InvalidArgumentError naming the field and the batch row; `replace`
      uses the field's schema `default` (the value of a missing feature)
      and counts each replacement in the `non_finite_replaced` training
      metric (per epoch, train and validation batches).
  """

  source: str = "synthetic"
  synthetic: SyntheticConfig = SyntheticConfig()
  shuffle_buffer: int = 100_000
  non_finite_policy: str = "error"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture sizes.

  Attributes:
    name: the method: `adaftr` (backbone + adaptive InfoNCE), `multitask`
      (the backbone alone, ESMM-style entire-space losses) or `aitm` (the
      CVR tower receives the CTR tower's information through the AIT unit;
      CTCVR predicted directly, plus the behavioural calibrator).
    backbone: the shared part: `mmoe` (experts + one softmax gate per task),
      `ple` (CGC extraction levels), `shared_bottom` (one shared MLP),
      `shared_embedding` (ESMM: shared embeddings, one MLP per task) or
      `single_task` (no sharing: separate embeddings and MLPs per task).
    embedding_dim: per-field embedding width.
    num_experts, expert_units: MMoE experts; `expert_units` is also the
      bottom MLP of shared_bottom / shared_embedding / single_task and the
      expert width of PLE.
    ple_levels, ple_shared_experts, ple_task_experts: PLE layout.
    aitm_calibration_weight: weight of AITM's calibrator loss.
    tower_units: each task tower's hidden layers; the last one is the task
      representation `h_ctr` / `h_cvr`.
    dropout: dropout rate in experts and towers.
    embedding_l2: L2 on the embedding rows used in a batch.
  """

  name: str = "adaftr"
  backbone: str = "mmoe"
  embedding_dim: int = 8
  num_experts: int = 4
  expert_units: tuple[int, ...] = (128, 64)
  tower_units: tuple[int, ...] = (64, 32)
  dropout: float = 0.0
  embedding_l2: float = 0.0
  ple_levels: int = 2
  ple_shared_experts: int = 2
  ple_task_experts: int = 1
  aitm_calibration_weight: float = 0.6


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The objective `L = L_ctr + L_ctcvr + contrastive_weight * L_cl`.

  Attributes:
    contrastive_weight: lambda; 0 disables the InfoNCE term.
    temperature_mode: `instance` (relatedness network, AdaFTR), `global` (one
      learned tau) or `fixed` (tau = fixed_tau).
    tau_min, tau_max: bounds of tau.
    fixed_tau: tau for `fixed` mode (default: geometric mean of the bounds).
    relatedness_input: what the relatedness network reads: the instance
      `embeddings` or the `towers_detached` representations [h_ctr, h_cvr].
    relatedness_stop_gradient: stop the relatedness network's gradient from
      reaching the embeddings it reads.
    relatedness_units: hidden layers of the relatedness network.
    projection_dim, projection_hidden: projection heads g, g'.
    symmetric: average the CTR->CVR and CVR->CTR InfoNCE directions.
    negatives: `in_batch` (all other instances) or `random_one`.
    relatedness_signal: what trains the relatedness network: `contrastive`
      (through InfoNCE, the paper reading), `gradient_agreement` (regression
      on the per-instance gradient cosine of `agreement_source` with respect
      to the instance embeddings; tau falls as the predicted
      agreement rises; needs temperature_mode=instance) or `fixed` (no
      network: needs temperature_mode=fixed).
    relatedness_loss_weight: weight of the agreement regression loss.
    agreement_source: the gradients whose per-instance cosine is the
      agreement: `logits` (of the CTR logit and the CVR logit, label-free) or
      `losses` (of the CTR loss and the CTCVR loss). The loss-gradient cosine
      is the logit one (with the CTCVR logit) times the sign of
      (p_ctr - click) * (p_ctcvr - conversion), a label pattern: every
      clicked, unconverted impression flips it (see agreement.py).
    agreement_representation: what the gradients are taken with respect
      to: the instance `embeddings` (every backbone) or the shared
      `experts`' outputs (MMoE experts, the shared bottom's output, PLE's
      first-level shared experts; needs one of those backbones).
    cross_replica_negatives: under a synchronous multi-replica strategy, draw
      `in_batch` negatives from the global batch (all-gathered across
      replicas; same loss and gradients as one device) rather than from each
      replica's local batch.
  """

  contrastive_weight: float = 0.1
  temperature_mode: str = "instance"
  tau_min: float = 0.05
  tau_max: float = 1.0
  fixed_tau: float | None = None
  relatedness_input: str = "embeddings"
  relatedness_stop_gradient: bool = True
  relatedness_units: tuple[int, ...] = (32,)
  projection_dim: int = 16
  projection_hidden: int = 32
  symmetric: bool = True
  negatives: str = "in_batch"
  relatedness_signal: str = "contrastive"
  relatedness_loss_weight: float = 1.0
  agreement_source: str = "losses"
  agreement_representation: str = "embeddings"
  cross_replica_negatives: bool = True


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation and checkpointing.

  Attributes:
    batch_size: global training batch (drop_remainder: in-batch negatives need
      full batches).
    eval_batch_size: batch for validation / test passes.
    epochs: maximum epochs; the best epoch on `checkpoint_metric` (validation
      split) is kept.
    steps_per_epoch: cap on steps per epoch (None = the whole train split).
    learning_rate, optimizer: adam, lazy_adam (Adam updating only the
      embedding rows in the batch: cheaper on large tables) or adagrad.
    steps_per_execution: steps run per tf.function call (fewer Python
      round trips).
    checkpoint_metric: validation metric that selects the best epoch.
    early_stopping_patience: epochs without improvement before stopping
      (0 = never stop early).
    seed: model initialisation and shuffling seed.
    strategy: tf.distribute engine, one of STRATEGIES (see
      pipelines/training/distribute.py and the README section "Scaling out").
    checkpoint_every_steps: step-checkpoint interval for crash-safe resume
      (model, optimizer, step, data position); 0 = at epoch ends only.
      Checked after each `steps_per_execution` group of steps.
    mixed_precision: Keras dtype policy, one of PRECISIONS; losses and
      InfoNCE similarities stay float32.
    jit_compile: compile the train/test steps with XLA.
    deterministic: enable TensorFlow op determinism (identical runs for
      identical seeds; unseeded random ops then raise). Process-wide: it stays
      on in the process after the run.
    ps_min_shard_bytes: under `parameter_server`, variables larger than this
      are sharded across the parameter servers (MinSizePartitioner).
  """

  batch_size: int = 1024
  eval_batch_size: int = 8192
  epochs: int = 3
  steps_per_epoch: int | None = None
  learning_rate: float = 0.002
  optimizer: str = "adam"
  steps_per_execution: int = 20
  checkpoint_metric: str = "val_ctcvr_auc"
  early_stopping_patience: int = 0
  seed: int = 42
  strategy: str = "default"
  checkpoint_every_steps: int = 100
  mixed_precision: str = "float32"
  jit_compile: bool = False
  deterministic: bool = False
  ps_min_shard_bytes: int = 256 << 10


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """SavedModel export options."""

  include_tau: bool = False


@dataclasses.dataclass(frozen=True)
class Config:
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  train: TrainConfig = TrainConfig()
  export: ExportConfig = ExportConfig()

  def validate(self) -> "Config":
    """Raises ValueError naming the first invalid or contradictory setting."""
    _validate(self)
    return self

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1, sort_keys=True)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "Config":
    return _from_dict(cls, data, "")

  @classmethod
  def from_json(cls, text: str) -> "Config":
    return cls.from_dict(json.loads(text))


def _choice(value, choices, key):
  if value not in choices:
    raise ValueError(f"{key}={value!r} is not valid; choose one of {choices}")


def _positive(value, key, allow_zero=False):
  ok = value >= 0 if allow_zero else value > 0
  if not ok or (isinstance(value, float) and not math.isfinite(value)):
    raise ValueError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def _validate(config: Config) -> None:
  d, m, l, t = config.data, config.model, config.loss, config.train
  _choice(d.source, ("synthetic", "files"), "data.source")
  s = d.synthetic
  for key in ("num_train", "num_valid", "num_test", "vocab_size", "latent_dim",
              "num_shards"):
    _positive(getattr(s, key), f"data.synthetic.{key}")
  if s.num_categorical + s.num_numerical < 1:
    raise ValueError("data.synthetic needs at least one categorical or "
                     "numerical field")
  for key in ("click_rate", "cvr_rate"):
    value = getattr(s, key)
    if not 0.0 < value < 1.0:
      raise ValueError(f"data.synthetic.{key}={value} must lie in (0, 1)")
  _positive(d.shuffle_buffer, "data.shuffle_buffer")
  _choice(d.non_finite_policy, NON_FINITE_POLICIES, "data.non_finite_policy")
  _choice(m.name, MODEL_NAMES, "model.name")
  _choice(m.backbone, BACKBONES, "model.backbone")
  for key in ("embedding_dim", "num_experts", "ple_levels",
              "ple_task_experts"):
    _positive(getattr(m, key), f"model.{key}")
  for key in ("expert_units", "tower_units"):
    units = getattr(m, key)
    if not units or any(u <= 0 for u in units):
      raise ValueError(f"model.{key}={units} must be a non-empty tuple of "
                       "positive ints")
  if not 0.0 <= m.dropout < 1.0:
    raise ValueError(f"model.dropout={m.dropout} must lie in [0, 1)")
  _positive(m.embedding_l2, "model.embedding_l2", allow_zero=True)
  _positive(m.ple_shared_experts, "model.ple_shared_experts", allow_zero=True)
  _positive(m.aitm_calibration_weight, "model.aitm_calibration_weight",
            allow_zero=True)
  _positive(l.contrastive_weight, "loss.contrastive_weight", allow_zero=True)
  _choice(l.temperature_mode, TEMPERATURE_MODES, "loss.temperature_mode")
  _choice(l.relatedness_input, RELATEDNESS_INPUTS, "loss.relatedness_input")
  _choice(l.negatives, NEGATIVES, "loss.negatives")
  _choice(l.relatedness_signal, RELATEDNESS_SIGNALS, "loss.relatedness_signal")
  _choice(l.agreement_source, AGREEMENT_SOURCES, "loss.agreement_source")
  _choice(l.agreement_representation, AGREEMENT_REPRESENTATIONS,
          "loss.agreement_representation")
  if l.agreement_representation == "experts" and (
      m.backbone not in ("mmoe", "ple", "shared_bottom")
      or (m.backbone == "ple" and m.ple_shared_experts < 1)):
    raise ValueError(
        "loss.agreement_representation=experts needs shared experts: "
        "model.backbone mmoe, shared_bottom, or ple with "
        f"model.ple_shared_experts >= 1 (got model.backbone={m.backbone}, "
        f"model.ple_shared_experts={m.ple_shared_experts})")
  _positive(l.relatedness_loss_weight, "loss.relatedness_loss_weight",
            allow_zero=True)
  needs_mode = {"gradient_agreement": "instance", "fixed": "fixed"}.get(
      l.relatedness_signal)
  if needs_mode and l.temperature_mode != needs_mode:
    raise ValueError(f"loss.relatedness_signal={l.relatedness_signal} needs "
                     f"loss.temperature_mode={needs_mode}, got "
                     f"{l.temperature_mode}")
  _positive(l.tau_min, "loss.tau_min")
  if not l.tau_min < l.tau_max:
    raise ValueError(f"loss.tau_min={l.tau_min} must be < loss.tau_max="
                     f"{l.tau_max}")
  if l.fixed_tau is not None and not l.tau_min <= l.fixed_tau <= l.tau_max:
    raise ValueError(f"loss.fixed_tau={l.fixed_tau} must lie in [tau_min, "
                     f"tau_max] = [{l.tau_min}, {l.tau_max}]")
  for key in ("projection_dim", "projection_hidden"):
    _positive(getattr(l, key), f"loss.{key}")
  _positive(t.batch_size, "train.batch_size")
  _positive(t.eval_batch_size, "train.eval_batch_size")
  uses_contrastive = m.name == "adaftr" and l.contrastive_weight > 0
  if uses_contrastive and t.batch_size < 2:
    raise ValueError(f"train.batch_size={t.batch_size}: in-batch negatives "
                     "need a batch of at least 2")
  _positive(t.epochs, "train.epochs")
  if t.steps_per_epoch is not None:
    _positive(t.steps_per_epoch, "train.steps_per_epoch")
  _positive(t.learning_rate, "train.learning_rate")
  _choice(t.optimizer, OPTIMIZERS, "train.optimizer")
  _positive(t.steps_per_execution, "train.steps_per_execution")
  _choice(t.checkpoint_metric, CHECKPOINT_METRICS, "train.checkpoint_metric")
  _positive(t.early_stopping_patience, "train.early_stopping_patience",
            allow_zero=True)
  _choice(t.strategy, STRATEGIES, "train.strategy")
  _positive(t.checkpoint_every_steps, "train.checkpoint_every_steps",
            allow_zero=True)
  _choice(t.mixed_precision, PRECISIONS, "train.mixed_precision")
  _positive(t.ps_min_shard_bytes, "train.ps_min_shard_bytes")
  if t.strategy == "parameter_server" and t.mixed_precision == "mixed_float16":
    raise ValueError("train.mixed_precision=mixed_float16 needs loss scaling, "
                     "which train.strategy=parameter_server does not support; "
                     "use mixed_bfloat16 or another strategy")
  if t.strategy == "parameter_server" and t.deterministic:
    raise ValueError("train.deterministic=true cannot hold under "
                     "train.strategy=parameter_server (asynchronous workers); "
                     "use a synchronous strategy")


# --- (de)serialisation and overrides -----------------------------------------

def _field_types(cls) -> dict[str, Any]:
  return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str) -> Any:
  """Converts a JSON value or override string to the field's declared type."""
  origin = typing.get_origin(hint)
  args = typing.get_args(hint)
  if dataclasses.is_dataclass(hint):
    if not isinstance(value, Mapping):
      raise ValueError(f"{key} must be a mapping, got {value!r}")
    return _from_dict(hint, value, key + ".")
  if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
    if value is None or (isinstance(value, str) and value.lower() == "none"):
      if type(None) in args:
        return None
    inner = [a for a in args if a is not type(None)]
    return _coerce(value, inner[0], key)
  if origin is tuple:
    if isinstance(value, str):
      value = [v for v in value.replace("(", "").replace(")", "").split(",")
               if v.strip()]
    if not isinstance(value, (list, tuple)):
      raise ValueError(f"{key} must be a list, got {value!r}")
    return tuple(_coerce(v, args[0], key) for v in value)
  if hint is bool:
    if isinstance(value, bool):
      return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
      return value.lower() in ("true", "1")
    raise ValueError(f"{key} must be a bool (true/false), got {value!r}")
  if hint is int:
    if isinstance(value, bool):
      raise ValueError(f"{key} must be an int, got {value!r}")
    try:
      if isinstance(value, str):
        return int(value.replace("_", ""))
      if isinstance(value, float) and not value.is_integer():
        raise ValueError
      return int(value)
    except ValueError:
      raise ValueError(f"{key} must be an int, got {value!r}") from None
  if hint is float:
    try:
      if isinstance(value, bool):
        raise ValueError
      return float(value)
    except (TypeError, ValueError):
      raise ValueError(f"{key} must be a number, got {value!r}") from None
  if hint is str:
    if not isinstance(value, str):
      raise ValueError(f"{key} must be a string, got {value!r}")
    return value
  raise ValueError(f"{key}: unsupported field type {hint}")


def _from_dict(cls, data: Mapping[str, Any], prefix: str):
  types = _field_types(cls)
  unknown = sorted(set(data) - set(types))
  if unknown:
    raise ValueError(f"unknown config key(s) {[prefix + k for k in unknown]}; "
                     f"valid keys under {prefix or 'the top level'}: "
                     f"{sorted(types)}")
  return cls(**{k: _coerce(v, types[k], prefix + k) for k, v in data.items()})


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
  """Returns `config` with `section.field=value` overrides applied.

  Raises:
    ValueError: an override without `=`, an unknown key (the valid keys are
      listed) or a value of the wrong type.
  """
  for item in overrides:
    if "=" not in item:
      raise ValueError(f"override {item!r} must look like key=value, e.g. "
                       "loss.tau_min=0.05")
    key, value = (part.strip() for part in item.split("=", 1))
    config = _replace_path(config, key.split("."), value, key)
  return config


def _replace_path(obj, path, value, full_key):
  types = _field_types(type(obj))
  name = path[0]
  if name not in types:
    where = full_key.rsplit(".", len(path))[0] if len(path) < len(
        full_key.split(".")) else "the top level"
    raise ValueError(f"unknown config key {full_key!r}: {name!r} is not one of "
                     f"{sorted(types)} (under {where})")
  if len(path) == 1:
    if dataclasses.is_dataclass(types[name]):
      raise ValueError(f"config key {full_key!r} is a section; set one of its "
                       f"fields: {sorted(_field_types(types[name]))}")
    return dataclasses.replace(obj, **{name: _coerce(value, types[name], full_key)})
  child = getattr(obj, name)
  if not dataclasses.is_dataclass(child):
    raise ValueError(f"config key {full_key!r}: {name!r} has no sub-fields")
  return dataclasses.replace(obj, **{name: _replace_path(child, path[1:], value,
                                                         full_key)})


# --- presets -----------------------------------------------------------------

def _tiny() -> Config:
  """Seconds-long run for tests: a small synthetic log and a small network."""
  return Config(
      data=DataConfig(
          synthetic=SyntheticConfig(num_train=4096, num_valid=1024,
                                    num_test=1024, num_categorical=4,
                                    num_numerical=6, vocab_size=50,
                                    click_rate=0.2, cvr_rate=0.3,
                                    num_shards=2),
          shuffle_buffer=4096),
      model=ModelConfig(embedding_dim=4, num_experts=2, expert_units=(16,),
                        tower_units=(16, 8)),
      loss=LossConfig(projection_dim=8, projection_hidden=8,
                      relatedness_units=(8,)),
      train=TrainConfig(batch_size=128, eval_batch_size=512, epochs=1,
                        learning_rate=0.01, steps_per_execution=4))


def _bench() -> Config:
  """The default quality benchmark (pipelines.benchmark_quality).

  Instance-level relatedness can matter here: conversions are sparse (5% click
  rate, 10% post-click purchase rate: about 0.5% of impressions convert), and
  the planted relatedness r(x) spreads over [0, 1], so for some instances the
  purchase is driven by the click's preference (r near 1: aligning the CTR and
  CVR representations should help) and for others by independent factors
  (r near 0: alignment should hurt). Smaller than `demo` so that many
  methods x seeds fit in one sitting on a CPU.
  """
  return Config(
      data=DataConfig(synthetic=SyntheticConfig(num_train=200_000,
                                                num_valid=40_000,
                                                num_test=100_000)),
      train=TrainConfig(epochs=2))


def _aliexpress() -> Config:
  """AliExpress (one country, ~10-30M impressions): converted data only."""
  return Config(
      data=DataConfig(source="files", shuffle_buffer=200_000),
      model=ModelConfig(embedding_dim=16, num_experts=8,
                        expert_units=(256, 128), tower_units=(64, 32),
                        dropout=0.2),
      loss=LossConfig(contrastive_weight=0.1),
      train=TrainConfig(batch_size=2048, eval_batch_size=16384, epochs=10,
                        learning_rate=0.001, early_stopping_patience=2))


def _aliccp() -> Config:
  """Ali-CCP (~38M train impressions, long behaviour lists): converted data."""
  return Config(
      data=DataConfig(source="files", shuffle_buffer=200_000),
      model=ModelConfig(embedding_dim=16, num_experts=4,
                        expert_units=(256, 128), tower_units=(128, 64),
                        dropout=0.1, embedding_l2=1e-6),
      loss=LossConfig(contrastive_weight=0.1),
      train=TrainConfig(batch_size=2048, eval_batch_size=16384, epochs=5,
                        learning_rate=0.001, early_stopping_patience=1))


PRESETS = {
    # The default synthetic run of `make demo`: a few minutes on 2 CPU cores.
    "demo": Config,
    # Same data and backbone without the contrastive loss (the reference).
    "demo_mmoe": lambda: Config(model=ModelConfig(name="multitask")),
    "tiny": _tiny,
    "bench": _bench,
    "aliexpress": _aliexpress,
    "aliccp": _aliccp,
}


def get_preset(name: str) -> Config:
  """Returns the named preset; ValueError lists the valid names."""
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
  return PRESETS[name]()
