"""Numerical faults: NaN/Inf feature values (both policies) and NaN losses.

A NaN or Inf numerical value either stops with an error naming the field
(and, at conversion, file:line), or becomes the schema default and is
counted (data report; `non_finite_replaced` training metric). A NaN loss
stops training with `NonFiniteError` naming the step; the checkpoints
written before it hold finite weights and nothing non-finite is saved.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import overrides

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.preprocessing import NON_FINITE_METRIC, FeatureEncoder
from pipelines.training import callbacks as cb
from pipelines.data import reader as data_reader
from pipelines.data import records
from pipelines.training import resume
from pipelines.data import synthetic
from pipelines.data.formats import report as report_lib
from pipelines.training import train_lib
from pipelines.data.formats import base
from pipelines.data.formats import conversion

pytestmark = pytest.mark.reliability

NAN_ROWS = (3, 70, 1000)  # train rows whose numerical_2 is NaN / +Inf / -Inf


def _tiny(*items):
  return overrides.apply(experiments.get_preset("tiny"), [
      "train.steps_per_epoch=8", "train.steps_per_execution=2",
      "train.checkpoint_every_steps=2", *items])


@pytest.fixture(scope="module")
def nan_data(tmp_path_factory):
  """Converted-looking data: the tiny synthetic log with 3 non-finite values."""
  config = experiments.get_preset("tiny").data.synthetic
  directory = str(tmp_path_factory.mktemp("nan_data"))
  rows = {}
  for split in ("train", "valid"):
    columns = synthetic.generate_split(config, split)
    if split == "train":
      for row, value in zip(NAN_ROWS, (np.nan, np.inf, -np.inf)):
        columns["numerical_2"][row] = value
    records.write_sharded(columns, directory, split, num_shards=2)
    rows[split] = {"rows": len(columns[F.CLICK])}
  synthetic.synthetic_schema(config).save(directory)
  with open(os.path.join(directory, report_lib.REPORT_FILE), "w") as f:
    json.dump({"splits": rows}, f)
  return directory


# --- the policy in the model's encoder (training and serving) ---------------

def _encoder(policy):
  schema = F.FeatureSchema((F.CategoricalFeature("c", 5),),
                           (F.NumericalFeature("x", mean=1.0, std=2.0,
                                               default=3.0),
                            F.NumericalFeature("y")))
  return FeatureEncoder(schema.to_dict(), non_finite=policy)


def _features(x):
  return {"c": tf.constant([1, 2, 3], tf.int64),
          "x": tf.constant(x, tf.float32),
          "y": tf.constant([0.0, 1.0, 2.0], tf.float32)}


def test_error_policy_names_the_field_and_the_row():
  encoder = _encoder("error")
  _, numerical = encoder(_features([1.0, 2.0, 5.0]))  # finite: unchanged
  np.testing.assert_allclose(numerical[:, 0], [0.0, 0.5, 2.0])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"numerical feature x holds a non-finite value"
                           r" \(NaN or Inf\) at batch row\W*1\W[\s\S]*inf"):
    encoder(_features([1.0, np.inf, np.nan]))
  graph = tf.function(lambda f: encoder(f)[1])
  with pytest.raises(tf.errors.InvalidArgumentError, match="feature x holds"):
    graph(_features([np.nan, 1.0, 1.0]))


def test_replace_policy_uses_the_schema_default_and_counts():
  encoder = _encoder("replace")
  _, numerical = encoder(_features([np.nan, 5.0, -np.inf]))
  # default 3.0 -> (3 - 1) / 2 = 1.0
  np.testing.assert_allclose(numerical[:, 0], [1.0, 2.0, 1.0])
  assert encoder.replaced.result().numpy() == 2
  encoder(_features([np.inf, 1.0, 1.0]), training=False)  # serving: no count
  assert encoder.replaced.result().numpy() == 2
  restored = FeatureEncoder.from_config(encoder.get_config())
  assert restored.non_finite == "replace"
  with pytest.raises(ValueError, match="non_finite='drop' is not valid"):
    _encoder("drop")


def test_config_rejects_an_unknown_policy():
  with pytest.raises(ValueError, match="data.non_finite_policy='skip' is not "
                     r"valid; choose one of \('error', 'replace'\)"):
    overrides.apply(experiments.get_preset("tiny"),
                               ["data.non_finite_policy=skip"]).validate()


def _model_and_batches(nan_data, *items):
  config = _tiny("model.name=multitask", *items)  # quicker to trace
  schema = F.FeatureSchema.load(nan_data)
  model = models.compile_model(models.build_model(config, schema), config)
  batches = data_reader.make_dataset(nan_data, "train", schema, 512,
                                   training=False)  # every row once: 8 steps
  return model, batches


def test_training_batches_with_nan_features_fail_naming_the_field(nan_data):
  model, batches = _model_and_batches(nan_data)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="numerical feature numerical_2 holds a non-finite "
                           r"value \(NaN or Inf\) at batch row\W*\d+\W"):
    model.fit(batches, steps_per_epoch=8, verbose=0)


def test_training_with_replace_counts_the_replacements(nan_data):
  model, batches = _model_and_batches(nan_data,
                                      "data.non_finite_policy=replace")
  history = model.fit(batches, steps_per_epoch=8, validation_data=batches,
                      validation_steps=8, verbose=0).history
  assert history[NON_FINITE_METRIC] == [len(NAN_ROWS)]  # once per epoch
  assert history["val_" + NON_FINITE_METRIC] == [len(NAN_ROWS)]
  assert np.isfinite(history["loss"]).all()
  assert np.isfinite(history["val_loss"]).all()


# --- the policy at conversion (file:line, data report) ----------------------

def _csv_with_non_finite(tmp_path, shared_data_dir):
  lines = open(os.path.join(shared_data_dir, "aliexpress_train_sample.csv")
               ).read().split("\n")
  for line, (column, value) in ((4, (20, "nan")), (6, (21, "-inf")),
                                (7, (22, "1e999"))):
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
  path = tmp_path / "train.csv"
  path.write_text("\n".join(lines))
  return str(path)


def test_converter_error_policy_names_file_line_and_field(tmp_path,
                                                         shared_data_dir):
  path = _csv_with_non_finite(tmp_path, shared_data_dir)
  options = conversion.Options(progress=False)
  with pytest.raises(base.BadRowError) as info:
    conversion.convert("aliexpress_csv", path, str(tmp_path / "out"), options,
                       log=lambda _: None)
  assert (info.value.line, info.value.kind) == (4, base.NON_FINITE)
  assert f"{path}:4:" in str(info.value)
  assert "(numerical_4) is 'nan'" in str(info.value)
  assert "--non_finite=replace" in str(info.value)
  assert not os.path.exists(tmp_path / "out")
  skipping = conversion.Options(progress=False, skip_bad_rows=True)
  report = conversion.convert("aliexpress_csv", path, str(tmp_path / "skip"),
                              skipping, log=lambda _: None)
  assert report["splits"]["train"]["skipped_by_kind"] == {base.NON_FINITE: 3}
  assert report["splits"]["train"]["rows"] == 87


def test_converter_replace_policy_writes_the_default_and_reports(
    tmp_path, shared_data_dir):
  path = _csv_with_non_finite(tmp_path, shared_data_dir)
  options = conversion.Options(progress=False, non_finite="replace")
  report = conversion.convert("aliexpress_csv", path, str(tmp_path / "out"),
                              options, log=lambda _: None)
  train = report["splits"]["train"]
  assert train["rows"] == 90 and train["skipped_bad_rows"] == 0
  assert train["non_finite_replaced"] == 3
  assert train["non_finite_replaced_by_field"] == {
      "numerical_4": 1, "numerical_5": 1, "numerical_6": 1}
  with open(tmp_path / "out" / "data_report.json") as f:
    assert json.load(f)["splits"]["train"]["non_finite_replaced"] == 3
  schema = F.FeatureSchema.load(str(tmp_path / "out"))
  values = [tf.io.parse_example(batch, schema.parse_spec())["numerical_4"]
            for batch in tf.data.TFRecordDataset(
                records.list_shards(str(tmp_path / "out"), "train")).batch(200)]
  values = np.concatenate([v.numpy() for v in values])
  assert np.isfinite(values).all()
  assert values[2] == F.NumericalFeature.default  # data line 3 = file line 4
  with pytest.raises(ValueError, match="--non_finite='zero' is not valid"):
    conversion.Options(non_finite="zero").validate()


# --- NaN loss ---------------------------------------------------------------

NAN_FROM_STEP = 12  # optimizer.iterations at which the loss turns NaN


def _weights_finite(model_dir, prefix):
  """Every float model variable stored in a checkpoint is finite."""
  reader = tf.train.load_checkpoint(os.path.join(model_dir, prefix))
  names = [n for n in reader.get_variable_to_shape_map()
           if "/.ATTRIBUTES/VARIABLE_VALUE" in n and "optimizer" not in n
           and reader.get_variable_to_dtype_map()[n].is_floating]
  assert names
  return all(np.isfinite(reader.get_tensor(n)).all() for n in names)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path,
                                                           monkeypatch):
  original = models.CtrCvrModel.compute_loss

  def nan_loss(self, inputs, training=False):
    loss = original(self, inputs, training)
    if not training:
      return loss
    broken = self.optimizer.iterations >= NAN_FROM_STEP
    return loss * tf.where(broken, float("nan"), 1.0)  # NaN gradients too

  monkeypatch.setattr(models.CtrCvrModel, "compute_loss", nan_loss)
  model_dir = str(tmp_path / "model")
  with pytest.raises(cb.NonFiniteError) as info:
    train_lib.train(_tiny("train.epochs=3"), model_dir, tiny_data, verbose=0,
                   log=lambda _: None)
  message = str(info.value)
  assert "loss is nan after global step 14 (epoch 2)" in message
  assert "step-12" in message and "learning_rate" in message
  steps_dir = os.path.join(model_dir, resume.STEPS_DIR)
  assert tf.train.latest_checkpoint(steps_dir).endswith("step-12")
  assert _weights_finite(steps_dir, "step-12")
  assert _weights_finite(model_dir, "checkpoints/epoch-001")
  assert _weights_finite(model_dir, "best/weights")
  assert not os.path.exists(os.path.join(model_dir, "checkpoints",
                                         "epoch-002.index"))


def test_a_step_checkpoint_of_nan_weights_is_refused(tmp_path):
  model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer="adam", loss="mse")
  model.optimizer.build(model.trainable_variables)
  checkpoints = resume.StepCheckpoints(model, str(tmp_path), str(tmp_path), 10)
  checkpoints.save(resume.Progress(4))
  model.layers[0].kernel.assign(tf.fill([3, 2], np.nan))
  with pytest.raises(cb.NonFiniteError, match=r"variable .*kernel.* holds NaN "
                     "or Inf values, so the step checkpoint at global step 8 "
                     "was not written"):
    checkpoints.save(resume.Progress(8))
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("step-4")


def test_serving_under_replace_answers_nan_with_the_default(tmp_path):
  from export import serving
  config = _tiny("model.name=multitask", "data.non_finite_policy=replace")
  schema = synthetic.synthetic_schema(config.data.synthetic)
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)
  serving.save(model, schema, str(tmp_path / "1"))
  serve = tf.saved_model.load(str(tmp_path / "1")).signatures[
      serving.SIGNATURE_EXAMPLES]

  def example(value):
    feature = {"numerical_1": tf.train.Feature(
        float_list=tf.train.FloatList(value=[value]))}
    return tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString()

  default = F.NumericalFeature.default
  out = serve(examples=tf.constant([example(np.nan), example(np.inf),
                                    example(default), example(5.0)]))
  ctr = out[F.CTR].numpy()
  assert np.isfinite(ctr).all()
  assert ctr[0] == ctr[1] == ctr[2] != ctr[3]
