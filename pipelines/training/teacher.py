"""The frozen teacher of `loss.tau_source=teacher`: a trained AdaFTR model
whose relatedness network sets this run's tau.

`check` runs before training and reads only the teacher's saved config and
schema; `attach` restores its weights (under the run's strategy scope) and
hands it to the alignment task, which calls it on every training and
validation batch behind a stop-gradient (tasks/alignment.py). The teacher is
no part of the student: no checkpoint, variable list or export holds it.
Cross-fitting: K teachers, the k-th trained without the rows of fold k
(`train.folds`, adaftr_tf/folds.py); each training row reads the teacher
that never trained on it. An ensemble: K teachers each trained on every row
(e.g. K seeds); every row reads their mean tau.
"""

from __future__ import annotations

import os

import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import Config
from pipelines.training import model_dir as model_dir_lib


def check(config: Config, schema: F.FeatureSchema) -> None:
  """Raises a one-line ValueError unless each directory of
  `loss.teacher_dir` holds a trained model with a per-instance tau of its
  own, trained on data of `schema`'s layout; K > 1 directories are an
  ensemble (each trained on every row: `train.folds=0`) or cross-fitted in
  fold order (the k-th trained with `train.folds=K, train.holdout_fold=k`,
  which XLA cannot compile), as the first one says. No-op for any other
  `loss.tau_source`."""
  if not config.needs_teacher:
    return
  teachers, _ = check_dirs(config.loss.teacher_dirs, schema,
                           config.runtime.jit_compile)
  if config.loss.teacher_field_share:
    for directory, teacher in zip(config.loss.teacher_dirs, teachers):
      check_linear(directory, teacher,
                   f"loss.teacher_field_share={config.loss.teacher_field_share}")


def check_linear(directory: str, teacher: Config, reader: str) -> None:
  """Raises a one-line ValueError, naming `reader` (what reads it), unless
  the teacher's relatedness network is linear on the field embeddings (its
  per-field parts: adaftr_tf/tasks/teacher_fields.py)."""
  if teacher.model.relatedness_units or (
      teacher.loss.relatedness_input != "embeddings"):
    raise ValueError(
        f"{reader} reads a linear teacher on the embeddings; "
        f"loss.teacher_dir={directory} has model.relatedness_units="
        f"{list(teacher.model.relatedness_units)}, loss.relatedness_input="
        f"{teacher.loss.relatedness_input} (needs model.relatedness_units=() "
        "and loss.relatedness_input=embeddings)")


def check_dirs(directories, schema: F.FeatureSchema,
               jit_compile: bool = False) -> tuple[list[Config], bool]:
  """`check` of a list of teacher directories: (their configs, whether they
  are cross-fitted); the same one-line ValueErrors."""
  teachers = [check_dir(directory, schema) for directory in directories]
  cross_fitted = is_cross_fitted(teachers)
  if len(directories) == 1:
    rule = ("a single teacher must train on every row (train.folds=0), or "
            "list all the cross-fitted teachers")
  elif cross_fitted:
    rule = (f"the {len(directories)} cross-fitted teachers must be listed in "
            "fold order, this one trained with train.folds={}, "
            "train.holdout_fold={}")
  else:
    rule = ("the teachers of an ensemble must each train on every row "
            "(train.folds=0), or list all the cross-fitted teachers in fold "
            "order")
  for fold, (directory, teacher) in enumerate(zip(directories, teachers)):
    found = (teacher.train.folds, teacher.train.holdout_fold)
    expected = (len(directories), fold) if cross_fitted else (0, None)
    if found != expected:
      raise ValueError(
          f"loss.teacher_dir: teacher {fold} ({directory}) was trained with "
          f"train.folds={found[0]}, train.holdout_fold={found[1]}; "
          + rule.format(*expected))
  if cross_fitted and jit_compile:
    raise ValueError("runtime.jit_compile=true cannot compile the row folds "
                     "of cross-fitted teachers (adaftr_tf/folds.py hashes "
                     "the raw features): set runtime.jit_compile=false")
  return teachers, cross_fitted


def check_dir(directory: str, schema: F.FeatureSchema) -> Config:
  """The config of one teacher directory, checked (see `check`) as a model
  with a tau of its own (whatever rows it trained on)."""
  weights = os.path.join(directory, model_dir_lib.BEST_WEIGHTS)
  if not tf.io.gfile.exists(weights + ".index"):
    raise ValueError(f"loss.teacher_dir={directory} holds no trained model "
                     f"(no {model_dir_lib.BEST_WEIGHTS}); train the teacher "
                     "first")
  teacher = model_dir_lib.read_config(directory)
  if not (teacher.uses_alignment and teacher.loss.tau_source == "network"
          and teacher.loss.temperature_mode == "instance"):
    raise ValueError(
        f"loss.teacher_dir={directory} is a model without a per-instance tau "
        f"of its own (model.name={teacher.model.name}, "
        f"loss.tau_source={teacher.loss.tau_source}, "
        f"loss.temperature_mode={teacher.loss.temperature_mode}); a teacher "
        "needs model.name=adaftr, loss.tau_source=network, "
        "loss.temperature_mode=instance")
  theirs = F.FeatureSchema.load(directory).to_dict()
  ours = schema.to_dict()
  if theirs != ours:
    differ = sorted(k for k in set(ours) | set(theirs)
                    if ours.get(k) != theirs.get(k))
    raise ValueError(f"loss.teacher_dir={directory} was trained on data of "
                     f"another schema (differs in {differ}); train the "
                     "teacher on this data")
  return teacher


def attach(model, config: Config) -> None:
  """Restores `loss.teacher_dir`'s model(s) and attaches them to `model`'s
  alignment task (call under the strategy scope that built `model`):
  cross-fitted if they were trained with `train.folds`, else an ensemble.
  No-op for any other `loss.tau_source`."""
  if not config.needs_teacher:
    return
  teachers, configs = [], []
  for directory in config.loss.teacher_dirs:
    teacher, saved, _ = model_dir_lib.load_trained(directory)
    teacher.trainable = False
    teachers.append(teacher)
    configs.append(saved)
  model.alignment_task.set_teacher(
      *teachers, cross_fitted=is_cross_fitted(configs),
      min_field_share=config.loss.teacher_field_share)


def is_cross_fitted(teachers: list[Config]) -> bool:
  """Whether several teachers' configs (in `loss.teacher_dir` order) are
  cross-fitted, as the first one says (trained with `train.folds`); else one
  teacher or an ensemble. `check` holds the others to it."""
  return len(teachers) > 1 and bool(teachers[0].train.folds)
