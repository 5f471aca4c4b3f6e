"""Tests of pipelines/training/teacher.py: `loss.tau_source=teacher` trains
with a trained model's tau, and a teacher that cannot give one is refused
before training, in one line."""

import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.tasks import transfer_gate
from pipelines.data import reader
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher as teacher_lib
from pipelines.training import train_lib
from tests.helpers.data import PAPER_READING
from tests.helpers.data import tiny_config
from tests.helpers.jobs import copy_run_with
from tests.helpers.jobs import read_json


def _student(teacher_dir, *items):
  return tiny_config(*PAPER_READING, "loss.tau_source=teacher",
                     f"loss.teacher_dir={teacher_dir}", *items)


def _train(config, tmp_path, data_dir):
  return train_lib.train(config, str(tmp_path / "model"), data_dir,
                         verbose=0, log=lambda _: None)


def _copy_with(tiny_run, tmp_path, name, edit, folder="teacher"):
  """A copy of the tiny run's model dir (in `folder`) with `edit(dict)`
  applied to one of its JSON files."""
  return copy_run_with(tiny_run["model_dir"], tmp_path / folder, name, edit)


def test_a_student_trains_with_the_teachers_tau_and_stands_alone(
    tiny_run, tmp_path):
  """The teacher (the tiny paper-reading run) sets tau on the student's
  batches, between the student's bounds; the
  student's model dir restores and predicts without the teacher."""
  config = _student(tiny_run["model_dir"], "loss.tau_min=0.2",
                    "train.steps_per_epoch=4")
  result = _train(config, tmp_path, tiny_run["data_dir"])
  history = read_json(tmp_path / "model" / "history.json")
  assert np.isfinite(history["cl_loss"][0]) and history["cl_loss"][0] > 0
  assert 0.2 <= history["tau_mean"][0] <= 1.0
  assert "tau_mean" not in result["valid"]   # no tau at inference
  model, saved, schema = model_dir_lib.load_trained(str(tmp_path / "model"))
  assert saved.loss.teacher_dir == tiny_run["model_dir"]
  outputs = model(schema.default_features(), training=False)
  assert F.TAU not in outputs
  assert np.all(np.isfinite(outputs[F.CVR].numpy()))


def test_a_teacher_without_a_trained_model_is_refused(tiny_run, tmp_path):
  config = _student(str(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match=r"loss\.teacher_dir=.*nowhere holds no "
                     r"trained model \(no best/weights\); train the teacher"):
    _train(config, tmp_path, tiny_run["data_dir"])
  assert not (tmp_path / "model" / "steps").exists()


def test_a_teacher_without_a_tau_of_its_own_is_refused(tiny_run, tmp_path):
  def multitask(config):
    config["model"]["name"] = "multitask"
  teacher = _copy_with(tiny_run, tmp_path, model_dir_lib.CONFIG_FILE,
                       multitask)
  with pytest.raises(ValueError, match=r"is a model without a per-instance "
                     r"tau of its own \(model\.name=multitask, .*needs "
                     r"model\.name=adaftr, loss\.tau_source=network"):
    _train(_student(teacher), tmp_path, tiny_run["data_dir"])


def test_a_teacher_of_other_data_is_refused(tiny_run, tmp_path):
  def drop_a_field(schema):
    schema["numerical"] = schema["numerical"][:-1]
  teacher = _copy_with(tiny_run, tmp_path, "schema.json", drop_a_field)
  with pytest.raises(ValueError, match=r"was trained on data of another "
                     r"schema \(differs in \['numerical'\]\); train the "
                     "teacher on this data"):
    _train(_student(teacher), tmp_path, tiny_run["data_dir"])
  assert os.path.isdir(teacher)


def _held_out(tiny_run, tmp_path, folds, fold):
  """A copy of the tiny run as if trained with train.folds, holdout_fold."""
  def hold_out(config):
    config["train"].update(folds=folds, holdout_fold=fold)
  return _copy_with(tiny_run, tmp_path, model_dir_lib.CONFIG_FILE, hold_out,
                    folder=f"fold{fold}of{folds}")


def test_a_student_trains_with_cross_fitted_teachers(tiny_run, tmp_path):
  """Two teachers listed in fold order: fold 0's trained (a few steps) by
  the job with train.folds=2, train.holdout_fold=0; fold 1's a copy of the
  tiny run marked held out (the training job with folds is exercised once)."""
  held_out = tiny_config(*PAPER_READING, "train.folds=2",
                         "train.holdout_fold=0", "train.steps_per_epoch=4",
                         "train.epochs=1")
  teachers = [str(tmp_path / "fold0of2"), _held_out(tiny_run, tmp_path, 2, 1)]
  train_lib.train(held_out, teachers[0], tiny_run["data_dir"], verbose=0,
                  log=lambda _: None)
  assert read_json(tmp_path / "fold0of2" / model_dir_lib.CONFIG_FILE)[
      "train"]["holdout_fold"] == 0
  config = _student(",".join(teachers), "train.steps_per_epoch=4")
  _train(config, tmp_path, tiny_run["data_dir"])
  history = read_json(tmp_path / "model" / "history.json")
  assert np.isfinite(history["cl_loss"][0]) and history["cl_loss"][0] > 0


def test_cross_fitted_teachers_must_come_in_fold_order(tiny_run, tmp_path):
  teachers = [_held_out(tiny_run, tmp_path, 2, k) for k in (0, 1)]
  with pytest.raises(ValueError, match=r"teacher 0 \(.*fold1of2\) was "
                     r"trained with train\.folds=2, train\.holdout_fold=1; "
                     r"the 2 cross-fitted teachers must be listed in fold "
                     r"order, this one trained with train\.folds=2, "
                     r"train\.holdout_fold=0"):
    _train(_student(",".join(reversed(teachers))), tmp_path,
           tiny_run["data_dir"])
  with pytest.raises(ValueError, match=r"teacher 0 .* was trained with "
                     r"train\.folds=2, train\.holdout_fold=0; a single "
                     r"teacher must train on every row"):
    _train(_student(teachers[0]), tmp_path, tiny_run["data_dir"])
  with pytest.raises(ValueError, match=r"teacher 1 \(.*\) was trained with "
                     r"train\.folds=0, train\.holdout_fold=None"):
    _train(_student(f"{teachers[0]},{tiny_run['model_dir']}"), tmp_path,
           tiny_run["data_dir"])
  with pytest.raises(ValueError, match=r"teacher 1 \(.*fold1of2\) was "
                     r"trained with train\.folds=2, train\.holdout_fold=1; "
                     r"the teachers of an ensemble must each train on every "
                     r"row \(train\.folds=0\)"):
    _train(_student(f"{tiny_run['model_dir']},{teachers[1]}"), tmp_path,
           tiny_run["data_dir"])
  with pytest.raises(ValueError, match=r"runtime\.jit_compile=true cannot "
                     r"compile the row folds of cross-fitted teachers"):
    _train(_student(",".join(teachers), "runtime.jit_compile=true"),
           tmp_path, tiny_run["data_dir"])
  assert not (tmp_path / "model" / "steps").exists()


def test_a_student_trains_with_an_ensemble_of_teachers(tiny_run, tmp_path):
  """Two teachers trained on every row (the tiny run and a copy with other
  weights): every row reads their mean tau, in training and evaluation."""
  other = _copy_with(tiny_run, tmp_path, model_dir_lib.CONFIG_FILE,
                     lambda config: None, folder="other")
  model, _, schema = model_dir_lib.load_trained(other)
  model.set_weights([w * 0.5 for w in model.get_weights()])
  model.save_weights(os.path.join(other, model_dir_lib.BEST_WEIGHTS))
  config = _student(f"{tiny_run['model_dir']},{other}", "loss.tau_min=0.2",
                    "train.steps_per_epoch=2")
  teachers = [model_dir_lib.load_trained(d)[0]
              for d in (tiny_run["model_dir"], other)]
  features = schema.default_features()
  taus = [t.instance_tau(features).numpy() for t in teachers]
  assert np.abs(taus[0] - taus[1]).max() > 1e-4
  _train(config, tmp_path, tiny_run["data_dir"])
  history = read_json(tmp_path / "model" / "history.json")
  assert np.isfinite(history["cl_loss"][0]) and history["cl_loss"][0] > 0
  student, _, _ = model_dir_lib.load_trained(str(tmp_path / "model"))
  teacher_lib.attach(student, config)
  task = student.alignment_task
  assert not task._cross_fitted and len(task._teacher) == 2
  np.testing.assert_allclose(
      task._teacher_tau(features, training=True).numpy(),
      np.clip((taus[0] + taus[1]) / 2, 0.2, 1.0), rtol=1e-5)


def test_a_pruned_teacher_is_read_through_its_fields_above_the_share(
    tiny_run, tiny_linear_teacher, tmp_path):
  """loss.teacher_field_share: a linear gate teacher (`tiny_linear_teacher`)
  is read through the fields carrying at least that share of its logit's
  variance in the batch (values against numpy on a batch of real rows); a
  teacher with hidden layers is refused before training, in one line."""
  with pytest.raises(ValueError, match=r"loss\.teacher_field_share=0\.5 reads "
                     r"a linear teacher on the embeddings; loss\.teacher_dir="
                     r".* has model\.relatedness_units=\[.+\], .*needs "
                     r"model\.relatedness_units=\(\)"):
    _train(_student(tiny_run["model_dir"], "loss.teacher_field_share=0.5"),
           tmp_path, tiny_run["data_dir"])
  assert not (tmp_path / "model" / "steps").exists()
  linear = tiny_linear_teacher
  teacher, saved, schema = model_dir_lib.load_trained(linear)
  features, _ = next(iter(reader.make_dataset(
      tiny_run["data_dir"], "valid", schema, 64, training=False)))
  x = teacher._embed(features)[0].numpy()
  kernel, bias = teacher.alignment_task.alignment.relatedness.linear_weights()
  fields = len(schema.categorical) + len(schema.numerical)
  parts = (x.reshape(len(x), fields, -1)
           * kernel.numpy().reshape(fields, -1)).sum(-1)
  shares = parts.var(0) / parts.var(0).sum()
  share = float(np.sort(shares)[-3:-1].mean())   # keeps the top two fields
  keep = shares >= share
  assert keep.sum() == 2
  config = _student(linear, f"loss.teacher_field_share={share}",
                    "train.steps_per_epoch=2")
  _train(config, tmp_path, tiny_run["data_dir"])
  student, _, _ = model_dir_lib.load_trained(str(tmp_path / "model"))
  teacher_lib.attach(student, config)
  logit = parts[:, keep].sum(1) + bias.numpy()[0]
  expected = transfer_gate.gate_tau(
      tf.nn.softplus(tf.constant(logit, tf.float32)), saved.loss.tau_min,
      saved.loss.tau_max, saved.loss.gate_quantile).numpy()
  tau = student.alignment_task._teacher_tau(features, training=True).numpy()
  np.testing.assert_allclose(tau, np.clip(expected, config.loss.tau_min,
                                          config.loss.tau_max), atol=1e-5)
  assert np.abs(tau - teacher.instance_tau(features).numpy()).max() > 1e-3
