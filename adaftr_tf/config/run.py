"""The whole run's config: five sections, the predicates, JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from adaftr_tf.config.checks import ConfigError
from adaftr_tf.config.loss import LossConfig
from adaftr_tf.config.sections import DataConfig
from adaftr_tf.config.sections import ModelConfig
from adaftr_tf.config.sections import RuntimeConfig
from adaftr_tf.config.sections import TrainConfig


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
  def needs_teacher(self) -> bool:
    """The loss reads tau from a trained model (`loss.teacher_dir`)."""
    return self.uses_alignment and self.loss.tau_source == "teacher"

  @property
  def uses_transfer(self) -> bool:
    """AITM: the CVR tower reads the CTR tower, plus the calibrator."""
    return self.model.name == "aitm"

  def validate(self) -> "Config":
    """Returns self; ConfigError names the first invalid setting."""
    for section in (self.data, self.model, self.loss, self.train,
                    self.runtime):
      section.validate()
    if self.runtime.jit_compile and self.train.folds:
      raise ConfigError("runtime.jit_compile=true cannot compile the row "
                        "folds of train.folds (adaftr_tf/folds.py hashes the "
                        "raw features): set runtime.jit_compile=false")
    if (self.loss.agreement_representation == "experts"
        and not self.model.has_shared_experts):
      raise ConfigError(
          "loss.agreement_representation=experts needs shared experts: "
          "model.backbone mmoe, shared_bottom, or ple with ple_shared_experts"
          f" >= 1 (got {self.model.backbone}, {self.model.ple_shared_experts})")
    if self.data.service and self.runtime.strategy in (
        "multi_worker_mirrored", "parameter_server"):
      raise ConfigError(
          f"data.service with runtime.strategy={self.runtime.strategy}: "
          "several training workers would each start their own service job "
          "and read every row (synchronous workers would need coordinated "
          "reads of one job); use the default or mirrored strategy, or no "
          "data.service")
    if self.loss.gate_field_share and self.model.relatedness_units:
      raise ConfigError(
          f"loss.gate_field_share={self.loss.gate_field_share} reads a linear "
          "transfer gate: set model.relatedness_units=() (got "
          f"{tuple(self.model.relatedness_units)})")
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

  @classmethod
  def from_saved(cls, data: Mapping[str, Any]) -> "Config | None":
    """A config saved by any version: fields added since take their
    defaults (which keep the old behaviour); None when this version cannot
    read it (a key or value it does not know).

    A config saved before `model.objective` existed is a funnel run whose
    `train.checkpoint_metric` default was `val_ctcvr_auc`, what `auto`
    means for the funnel: it reads as `auto` (the same run)."""
    model, train = data.get("model") or {}, data.get("train") or {}
    if ("objective" not in model
        and train.get("checkpoint_metric") == "val_ctcvr_auc"):
      data = {**data, "train": {**train, "checkpoint_metric": "auto"}}
    try:
      return cls.from_dict(data)
    except ConfigError:
      return None
