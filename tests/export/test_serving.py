"""Tests of export/serving.py: the SavedModel's signatures (names, dtypes, tau),
defaults for unseen ids and missing features, bad requests refused, a reload
in a fresh process, and fuzzed requests."""

import json
import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.layers.calibration import OutputCalibration
from export import requests
from export import serving
from pipelines.data import layout
from pipelines.data import synthetic
from pipelines.training import model_dir
from tests.helpers.data import tiny_config
from tests.helpers.exports import example
from tests.helpers.fuzz import FUZZ


_FRESH_PROCESS_SCRIPT = r"""
import json, sys
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
saved_model, records_path, num = sys.argv[1], sys.argv[2], int(sys.argv[3])
loaded = tf.saved_model.load(saved_model)
examples = [r.numpy() for r in tf.data.TFRecordDataset(records_path).take(num)]
by_examples = loaded.signatures["serving_default"](examples=tf.constant(examples))
spec = {k: tf.io.FixedLenFeature([], v.dtype)
        for k, v in loaded.signatures["predict_features"].structured_input_signature[1].items()}
parsed = tf.io.parse_example(tf.constant(examples), spec)
by_features = loaded.signatures["predict_features"](**parsed)
warmup = []
path = saved_model + "/assets.extra/tf_serving_warmup_requests"
for record in tf.data.TFRecordDataset(path):
  request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
  inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
  out = loaded.signatures[request.model_spec.signature_name](**inputs)
  warmup.append([request.model_spec.signature_name, len(out["ctr"].numpy())])
print(json.dumps({"examples": {k: v.numpy().tolist() for k, v in by_examples.items()},
                  "features": {k: v.numpy().tolist() for k, v in by_features.items()},
                  "warmup": warmup, "tf_keras_loaded": "tf_keras" in sys.modules}))
"""


def _in_memory(model, schema, examples, calibration):
  """What the export serves, computed in memory: the model's outputs through
  the run's fitted calibration (and the raw ones), with tau."""
  outputs = model(tf.io.parse_example(tf.constant(examples),
                                      schema.parse_spec(with_labels=False)),
                  training=False)
  calibrate = OutputCalibration(calibration.to_json())
  served = serving.served_outputs(
      outputs, {**model.objective.serving_outputs, F.TAU: F.TAU}, calibrate)
  return {k: v.numpy() for k, v in served.items()}


@pytest.mark.slow  # reloads in a fresh Python process
def test_reload_in_fresh_process_same_outputs_and_warmup_runs(tiny_run, published,
                                                             tmp_path):
  shard = layout.write_split_examples(
      tiny_run["data_dir"], "test", str(tmp_path / "test.tfrecord"), 50)
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS_SCRIPT, published,
                         shard, "50"], capture_output=True, text=True, env=env,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  reloaded = json.loads(done.stdout.strip().splitlines()[-1])
  assert not reloaded["tf_keras_loaded"]
  examples = [r.numpy() for r in tf.data.TFRecordDataset(shard).take(50)]
  calibration = model_dir.read_calibration(tiny_run["model_dir"])
  assert calibration.method == "platt" and calibration.curves
  expected = _in_memory(tiny_run["model"], tiny_run["schema"], examples,
                        calibration)
  for signature in ("examples", "features"):
    assert set(reloaded[signature]) == set(expected)
    for key, values in expected.items():
      np.testing.assert_allclose(reloaded[signature][key], values, atol=1e-6)
  # Every warm-up record parsed as a PredictionLog and ran: 20 single-record
  # requests, then one batched request per signature.
  assert reloaded["warmup"] == ([["serving_default", 1]] * 20
                                + [["serving_default", 20], ["predict_features", 20]])


def test_signatures_stable_names_dtypes_and_tau(tiny_run, loaded):
  serving_fn = loaded.signatures["serving_default"]
  inputs = serving_fn.structured_input_signature[1]
  assert list(inputs) == ["examples"] and inputs["examples"].dtype == tf.string
  for name in ("serving_default", "predict_features"):
    outputs = loaded.signatures[name].structured_outputs
    assert set(outputs) == {"ctr", "cvr", "ctcvr", "tau", "ctr_raw",
                            "cvr_raw", "ctcvr_raw"}   # calibrated and raw
    assert all(o.dtype == tf.float32 and o.shape.as_list() == [None]
               for o in outputs.values())
  inputs = loaded.signatures["predict_features"].structured_input_signature[1]
  assert set(inputs) == set(tiny_run["schema"].feature_names)


def test_oov_ids_and_missing_features_take_documented_defaults(tiny_run, loaded):
  schema = tiny_run["schema"]
  cat, num = schema.categorical[0], schema.numerical[0]
  full = {f.name: 1 for f in schema.categorical}
  full.update({f.name: 0.5 for f in schema.numerical})
  rest = {k: v for k, v in full.items() if k != cat.name}
  records_ = [example(**{**rest, cat.name: 10**9}),        # unseen id
              example(**{**rest, cat.name: -7}),           # negative id
              example(**rest),                             # missing -> default
              example(**{**rest, cat.name: cat.default})]  # explicit default
  out = loaded.signatures["serving_default"](examples=tf.constant(records_))
  ctr = out["ctr"].numpy()
  np.testing.assert_allclose(ctr, ctr[0], atol=1e-7)  # all four hit the OOV row
  no_num = {k: v for k, v in full.items() if k != num.name}
  pair = [example(**no_num), example(**{**no_num, num.name: float(num.default)})]
  out = loaded.signatures["serving_default"](examples=tf.constant(pair))
  assert out["ctr"].numpy()[0] == pytest.approx(out["ctr"].numpy()[1], abs=1e-7)
  empty = loaded.signatures["serving_default"](
      examples=tf.constant([tf.train.Example().SerializeToString()]))
  assert np.all(np.isfinite(empty["ctcvr"].numpy()))
  columns = requests.parse_features(records_[:1], schema)
  by_features = loaded.signatures["predict_features"](
      **{k: tf.constant(v) for k, v in columns.items()})
  assert by_features["ctr"].numpy()[0] == pytest.approx(ctr[0], abs=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("cat", 1.5, "Data types don't match"),   # float_list where int64 expected
    ("num", 3, "Data types don't match"),     # int64_list where float expected
    ("cat", b"id", "Data types don't match"),
    ("cat", [1, 2], "Number of int64 values != expected"),
])
def test_wrong_types_fail_the_request_naming_the_feature(tiny_run, loaded, field,
                                                         value, message):
  schema = tiny_run["schema"]
  name = (schema.categorical if field == "cat" else schema.numerical)[0].name
  good = example()
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    loaded.signatures["serving_default"](
        examples=tf.constant([good, example(**{name: value})]))
  assert f"Key: {name}" in str(info.value) and message in str(info.value)
  # The model keeps answering well-formed requests.
  assert loaded.signatures["serving_default"](
      examples=tf.constant([good]))["ctr"].shape == (1,)


def test_malformed_requests_are_refused(tiny_run, loaded):
  with pytest.raises(tf.errors.InvalidArgumentError, match="Could not parse example"):
    loaded.signatures["serving_default"](examples=tf.constant([b"not a proto"]))
  schema = tiny_run["schema"]
  columns = {f.name: tf.zeros([2], tf.int64) for f in schema.categorical}
  columns.update({f.name: tf.zeros([2], tf.float32) for f in schema.numerical})
  ragged = {**columns, schema.numerical[-1].name: tf.zeros([3], tf.float32)}
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=f"input {schema.numerical[-1].name} has a different"):
    loaded.signatures["predict_features"](**ragged)
  wrong_dtype = {**columns, schema.categorical[0].name: tf.zeros([2], tf.float32)}
  with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a int64"):
    loaded.signatures["predict_features"](**wrong_dtype)


# --- the non-finite policy in serving -----------------------------------------

@pytest.mark.reliability
def test_serving_under_replace_answers_nan_with_the_default(tmp_path):
  config = tiny_config("train.steps_per_epoch=8", "train.steps_per_execution=2",
                       "train.checkpoint_every_steps=2", "model.name=multitask",
                       "data.non_finite_policy=replace")
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


# --- fuzzed requests ----------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """An (untrained) tiny model exported once: (serve, model, schema)."""
  config = experiments.get_preset("tiny")
  schema = synthetic.synthetic_schema(config.data.synthetic)
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)
  path = str(tmp_path_factory.mktemp("export") / "1")
  serving.save(model, schema, path)
  loaded = tf.saved_model.load(path)
  return loaded.signatures[serving.SIGNATURE_EXAMPLES], model, schema


def _outputs_ok(outputs, rows):
  for key in F.SERVING_OUTPUTS:
    values = outputs[key].numpy()
    assert values.shape == (rows,)
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()


@pytest.mark.reliability
@FUZZ
@given(batch=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_serving_arbitrary_bytes_fail_clearly_or_serve(exported, batch):
  serve, _, _ = exported
  try:
    outputs = serve(examples=tf.constant(batch))
  except tf.errors.InvalidArgumentError as err:
    assert "parse" in str(err).lower() or "feature" in str(err).lower()
    return
  except UnicodeDecodeError:
    # TensorFlow's Python layer cannot decode an InvalidArgumentError whose
    # message quotes non-UTF-8 request bytes; the request still fails (TF
    # Serving answers INVALID_ARGUMENT).
    return
  _outputs_ok(outputs, len(batch))


def _value(kind):
  return {"id": st.integers(-2**63, 2**63 - 1).map(
      lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))),
          "float": st.floats(width=32, allow_nan=True, allow_infinity=True).map(
      lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))),
          "two": st.just(tf.train.Feature(
              int64_list=tf.train.Int64List(value=[1, 2]))),
          "bytes": st.binary(max_size=8).map(
      lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])))
          }[kind]


@st.composite
def _examples(draw, names):
  feature = {}
  for name in names:
    kind = draw(st.sampled_from(["missing", "ok", "ok", "id", "float", "two",
                                 "bytes"]))
    if kind == "ok":
      kind = "id" if name.startswith("categorical") else "float"
    if kind != "missing":
      feature[name] = draw(_value(kind))
  return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.mark.reliability
@FUZZ
@given(data=st.data())
def test_serving_examples_give_the_model_outputs_or_a_named_error(exported,
                                                                  data):
  serve, model, schema = exported
  example = data.draw(_examples(schema.feature_names))
  try:
    outputs = serve(examples=tf.constant([example.SerializeToString()]))
  except tf.errors.InvalidArgumentError as err:
    fields = example.features.feature
    named = [n for n in schema.feature_names if n in str(err)]
    assert named, str(err)[:300]
    name = named[0]
    wrong_type = (fields[name].WhichOneof("kind") !=
                  ("int64_list" if name.startswith("categorical")
                   else "float_list"))
    values = (fields[name].float_list.value
              if fields[name].WhichOneof("kind") == "float_list" else [0])
    assert (wrong_type or len(getattr(fields[name], fields[name].WhichOneof(
        "kind")).value) != 1 or not np.isfinite(values).all()), str(err)[:300]
    return
  _outputs_ok(outputs, 1)
  parsed = tf.io.parse_example([example.SerializeToString()],
                               schema.parse_spec(with_labels=False))
  expected = model(parsed, training=False)
  for key in F.SERVING_OUTPUTS:  # the documented defaults, no silent drift
    np.testing.assert_allclose(outputs[key].numpy(), expected[key].numpy(),
                               rtol=1e-5, atol=1e-6)


def _serves_the_features_alone(path, model, schema, columns, outputs):
  """The saved signatures take the features alone (no oracle column) and
  return `outputs`, equal to the in-memory model's."""
  loaded = tf.saved_model.load(path)
  for name in (serving.SIGNATURE_EXAMPLES, serving.SIGNATURE_FEATURES):
    signature = loaded.signatures[name]
    inputs = set(signature.structured_input_signature[1])
    assert not any(k.startswith(F.ORACLE_PREFIX) for k in inputs), inputs
    assert set(signature.structured_outputs) == set(outputs)
  features = {k: tf.constant(columns[k][:4]) for k in schema.feature_names}
  served = loaded.signatures[serving.SIGNATURE_FEATURES](**features)
  expected = model(features, training=False)
  for key in outputs:
    np.testing.assert_allclose(served[key].numpy(), expected[key].numpy(),
                               rtol=1e-5, atol=1e-7)


def test_a_control_tau_model_serves_without_oracle_inputs_or_tau(tmp_path):
  """tau from the planted relatedness is training-only: the signatures take
  the features alone and return no tau."""
  from adaftr_tf import models
  from tests.helpers.data import PAPER_READING
  from tests.helpers.data import synthetic_columns
  from tests.helpers.data import tiny_config
  config = tiny_config(*PAPER_READING, "loss.tau_source=oracle")
  columns, schema = synthetic_columns(config, 16)
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)
  with pytest.raises(ValueError, match="training-only control"):
    serving.ServingModule(model, schema, include_tau=True)
  path = str(tmp_path / "saved")
  serving.save(model, schema, path)
  _serves_the_features_alone(path, model, schema, columns,
                             F.SERVING_OUTPUTS)


def test_a_transfer_gate_model_serves_without_tau(tmp_path):
  """The library's default AdaFTR (the transfer gate): its tau ranks the
  slopes within a batch, so the export refuses to serve it per request and
  serves the predictions from the features alone."""
  from adaftr_tf import models
  from tests.helpers.data import synthetic_columns
  from tests.helpers.data import tiny_config
  config = tiny_config()
  assert config.loss.relatedness_signal == "transfer_gate"
  columns, schema = synthetic_columns(config, 16)
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)
  with pytest.raises(ValueError, match="include_tau: the transfer gate's tau "
                     "is the rank of an instance's slope within its batch"):
    serving.ServingModule(model, schema, include_tau=True)
  path = str(tmp_path / "saved")
  serving.save(model, schema, path)
  _serves_the_features_alone(path, model, schema, columns,
                             F.SERVING_OUTPUTS)


def test_a_meta_gradient_model_serves_its_network_tau(tmp_path):
  """The meta-gradient trains tau's network in training only; the export
  serves the network's tau (include_tau) from the features alone."""
  from adaftr_tf import models
  from tests.helpers.data import synthetic_columns
  from tests.helpers.data import tiny_config
  config = tiny_config("loss.relatedness_signal=meta_gradient")
  columns, schema = synthetic_columns(config, 16)
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)
  path = str(tmp_path / "saved")
  serving.save(model, schema, path, include_tau=True)
  _serves_the_features_alone(path, model, schema, columns,
                             tuple(F.SERVING_OUTPUTS) + (F.TAU,))
