"""Every named choice of adaftr-tf as a `Literal` type: the one list of each.

Config fields are annotated with these types (so `Config.validate` and the
override parser know the valid values), and the layers that take one of
these strings check it with `check`. `options(T)` gives the tuple of values.
"""

from __future__ import annotations

import typing
from typing import Literal

DataSource = Literal["synthetic", "files"]
NonFinitePolicy = Literal["error", "replace"]
# How training records are stored (pipelines/data/layout.py): column-wise
# blocks of rows, or one tf.train.Example per row (interchange, serving).
RecordLayout = Literal["blocks", "rows"]
ModelName = Literal["adaftr", "multitask", "aitm"]
Backbone = Literal["mmoe", "ple", "shared_bottom", "shared_embedding",
                   "single_task"]
TemperatureMode = Literal["instance", "global", "fixed"]
RelatednessInput = Literal["embeddings", "towers_detached"]
Negatives = Literal["in_batch", "random_one"]
# What trains the relatedness network: InfoNCE itself, a regression on the
# measured gradient agreement, the conversion labels through the predictive
# transfer gate (tasks/transfer_gate.py), the meta-gradient of a held-out
# conversion loss through a virtual alignment step (tasks/meta_gradient.py),
# or nothing (tau fixed).
RelatednessSignal = Literal["contrastive", "gradient_agreement", "fixed",
                            "transfer_gate", "meta_gradient"]
# Where tau comes from: the relatedness `network`, or (synthetic data only,
# training only) the planted relatedness r read from the oracle columns:
# `oracle` (small tau where related), `anti_oracle` (the reverse),
# `shuffled_oracle` (the oracle's values permuted within the batch), or a
# consistent tau unrelated to r (`field_hash`: a hash of one field's id);
# or `teacher`: the tau of a trained AdaFTR model (`loss.teacher_dir`) held
# fixed, a learned signal known from the first step (any data).
TauSource = Literal["network", "oracle", "anti_oracle", "shuffled_oracle",
                    "field_hash", "noisy_oracle", "teacher"]
# The synthetic world's relatedness: `planted` (r(x) spread over [0, 1]),
# `one` (r = 1: the purchase logit is the click logit) or `zero` (r = 0:
# independent).
RelatednessWorld = Literal["planted", "one", "zero"]
# What the gradient-agreement cosine compares (adaftr_tf/losses/agreement.py).
AgreementSource = Literal["losses", "logits"]
# With respect to what it is taken: the instance embeddings, or the tensor
# every task reads inside the backbone (layers/experts.py `tap`).
AgreementRepresentation = Literal["embeddings", "experts"]
Optimizer = Literal["adam", "lazy_adam", "adagrad"]
# The learning rate over training: constant, or a linear warm-up to the
# learning rate then a cosine decay to 0 (adaftr_tf/optimizers.py).
LearningRateSchedule = Literal["constant", "warmup_cosine"]
# The main objective (adaftr_tf/objective.py): `auto` follows the data.
Objective = Literal["auto", "funnel", "independent"]
# `auto`: val_ctcvr_auc for the funnel, val_mean_auc for independent tasks.
CheckpointMetric = Literal["auto", "val_ctcvr_auc", "val_ctr_auc",
                           "val_cvr_auc", "val_mean_auc", "val_loss"]
# Post-hoc calibration of each task's logit (adaftr_tf/calibration.py).
CalibrationMethod = Literal["none", "platt", "isotonic"]
Strategy = Literal["default", "mirrored", "multi_worker_mirrored",
                   "parameter_server"]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
Combiner = Literal["mean", "sum", "sqrtn"]


def options(choice) -> tuple[str, ...]:
  """The valid values of a Literal choice type, in declaration order."""
  return typing.get_args(choice)


def is_choice(hint) -> bool:
  """Whether a type annotation is one of these Literal choice types."""
  return typing.get_origin(hint) is Literal


def check_fields(section, error: type[ValueError], prefix: str) -> None:
  """Every Literal-typed field of the dataclass `section` holds one of its
  values; `error` names the first that does not (as `prefix.field`)."""
  for name, hint in typing.get_type_hints(type(section)).items():
    if is_choice(hint):
      value = getattr(section, name)
      if value not in options(hint):
        raise error(f"{prefix}.{name}={value!r} is not valid; choose one of "
                    f"{options(hint)}")


def check(name: str, value, choice) -> str:
  """Returns `value`; ValueError naming `name` and the valid values if not one."""
  valid = options(choice)
  if value not in valid:
    raise ValueError(f"{name}={value!r} is not valid; choose one of {valid}")
  return value
