"""SavedModel export: signatures, warm-up, validation, versions, bad records."""

import json
import os
import shutil
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from export import export_savedmodel
from export import exporter
from export import versions
from export import requests
from export import serving
from export import validation
from pipelines.data import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_FLOORS = validation.Policy(min_auc={})  # the tiny model's AUCs are ~0.5

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


def _in_memory(model, schema, examples, keys):
  outputs = model(tf.io.parse_example(tf.constant(examples),
                                      schema.parse_spec(with_labels=False)),
                  training=False)
  return {k: outputs[k].numpy() for k in keys}


def _example(**values):
  """A tf.Example; int -> int64_list, float -> float_list, bytes -> bytes_list."""
  example = tf.train.Example()
  for key, vals in values.items():
    vals = vals if isinstance(vals, list) else [vals]
    feature = example.features.feature[key]
    if isinstance(vals[0], float):
      feature.float_list.value.extend(vals)
    elif isinstance(vals[0], bytes):
      feature.bytes_list.value.extend(vals)
    else:
      feature.int64_list.value.extend(vals)
  return example.SerializeToString()


def _run_main(module, argv):
  with flagsaver.flagsaver():
    flags.FLAGS(["prog"] + argv)
    return module.main(["prog"])


@pytest.fixture(scope="module")
def published(tiny_run, tmp_path_factory):
  """A real, validated, warm export (with tau) of the tiny run: version 1."""
  base = str(tmp_path_factory.mktemp("published"))
  return exporter.export(tiny_run["model_dir"], base,
                                  data_dir=tiny_run["data_dir"], include_tau=True,
                                  policy=NO_FLOORS, warmup_records=20,
                                  log=lambda _: None)


@pytest.fixture(scope="module")
def loaded(published):
  return tf.saved_model.load(published)


@pytest.fixture
def valid_report(tiny_run, monkeypatch):
  """Skips the (slow) evaluation: the candidate's report is the run's own."""
  report = dict(tiny_run["valid"])
  monkeypatch.setattr(validation, "evaluate_candidate", lambda *_: dict(report))
  return report


def test_reload_in_fresh_process_same_outputs_and_warmup_runs(tiny_run, published):
  shard = records.list_shards(tiny_run["data_dir"], "test")[0]
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS_SCRIPT, published,
                         shard, "50"], capture_output=True, text=True, env=env,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  reloaded = json.loads(done.stdout.strip().splitlines()[-1])
  assert not reloaded["tf_keras_loaded"]
  examples = [r.numpy() for r in tf.data.TFRecordDataset(shard).take(50)]
  keys = F.SERVING_OUTPUTS + (F.TAU,)
  expected = _in_memory(tiny_run["model"], tiny_run["schema"], examples, keys)
  for signature in ("examples", "features"):
    assert set(reloaded[signature]) == set(keys)
    for key, values in expected.items():
      np.testing.assert_allclose(reloaded[signature][key], values, atol=1e-6)
  # Every warm-up record parsed as a PredictionLog and ran: 20 single-record
  # requests, then one batched request per signature.
  assert reloaded["warmup"] == ([["serving_default", 1]] * 20
                                + [["serving_default", 20], ["predict_features", 20]])


def test_warmup_holds_validation_examples_without_labels(tiny_run, published):
  logs = requests.read_warmup(versions.extra_path(published, versions.WARMUP_FILE))
  shard_records = tf.data.TFRecordDataset(records.list_shards(tiny_run["data_dir"],
                                                              "valid"))
  first = [r.numpy() for r in shard_records.take(20)]
  expected = requests.parse_features(first, tiny_run["schema"])
  single = [requests.request_inputs(log.predict_log.request) for log in logs[:20]]
  assert all(s == serving.SIGNATURE_EXAMPLES for s, _ in single)
  got = requests.parse_features([i["examples"][0] for _, i in single],
                                tiny_run["schema"])
  for name, values in expected.items():
    np.testing.assert_array_equal(got[name], values)
  example = tf.train.Example.FromString(single[0][1]["examples"][0])
  assert set(example.features.feature) == set(tiny_run["schema"].feature_names)


def test_metrics_stored_beside_the_version(tiny_run, published):
  stored = versions.read_metrics(published)
  assert stored["split"] == "valid"
  assert stored["data_dir"] == os.path.abspath(tiny_run["data_dir"])
  for task in validation.TASKS:
    key = validation.auc_key(task)
    assert stored["metrics"][key] == pytest.approx(tiny_run["valid"][key], abs=1e-6)
  for name in (versions.CONFIG_FILE, F.SCHEMA_FILE):
    assert os.path.exists(versions.extra_path(published, name))


def test_signatures_stable_names_dtypes_and_tau(tiny_run, loaded):
  serving_fn = loaded.signatures["serving_default"]
  inputs = serving_fn.structured_input_signature[1]
  assert list(inputs) == ["examples"] and inputs["examples"].dtype == tf.string
  for name in ("serving_default", "predict_features"):
    outputs = loaded.signatures[name].structured_outputs
    assert set(outputs) == {"ctr", "cvr", "ctcvr", "tau"}
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
  records_ = [_example(**{**rest, cat.name: 10**9}),        # unseen id
              _example(**{**rest, cat.name: -7}),           # negative id
              _example(**rest),                             # missing -> default
              _example(**{**rest, cat.name: cat.default})]  # explicit default
  out = loaded.signatures["serving_default"](examples=tf.constant(records_))
  ctr = out["ctr"].numpy()
  np.testing.assert_allclose(ctr, ctr[0], atol=1e-7)  # all four hit the OOV row
  no_num = {k: v for k, v in full.items() if k != num.name}
  pair = [_example(**no_num), _example(**{**no_num, num.name: float(num.default)})]
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
  good = _example()
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    loaded.signatures["serving_default"](
        examples=tf.constant([good, _example(**{name: value})]))
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


def test_injected_failure_leaves_no_numbered_dir(tiny_run, tmp_path, monkeypatch):
  base = str(tmp_path / "export")

  def broken_save(model, schema, path, **kwargs):
    tf.io.gfile.makedirs(os.path.join(path, "variables"))  # half-written
    raise OSError("disk full (injected)")

  monkeypatch.setattr(serving, "save", broken_save)
  with pytest.raises(OSError, match="injected"):
    exporter.export(tiny_run["model_dir"], base, log=lambda _: None)
  assert versions.versions(base) == [] and os.listdir(base) == []


def test_failed_warmup_replay_leaves_no_numbered_dir(tiny_run, tmp_path,
                                                     monkeypatch, valid_report):
  from export import verify
  base = str(tmp_path / "export")
  monkeypatch.setattr(verify, "replay", lambda *_, **__: verify.Replay(
      records=1, problems=["record 0: ctr differs (injected)"]))
  with pytest.raises(ValueError, match="failed its warm-up replay"):
    exporter.export(tiny_run["model_dir"], base,
                             data_dir=tiny_run["data_dir"], policy=NO_FLOORS,
                             warmup_records=2, log=lambda _: None)
  assert versions.versions(base) == [] and os.listdir(base) == []


def test_main_refuses_below_floor_with_nonzero_exit(tiny_run, tmp_path, capsys,
                                                    valid_report):
  base = str(tmp_path / "export")
  floor = valid_report["ctr_auc"] + 0.01
  status = _run_main(export_savedmodel, [
      f"--model_dir={tiny_run['model_dir']}", f"--data_dir={tiny_run['data_dir']}",
      f"--export_base={base}", f"--min_ctr_auc={floor}", "--min_cvr_auc=0",
      "--min_ctcvr_auc=0"])
  assert status == 1
  err = capsys.readouterr().err
  assert "export refused" in err and "ctr_auc" in err and "--min_ctr_auc" in err
  assert versions.versions(base) == []
  assert not os.path.exists(base) or os.listdir(base) == []


def test_refuses_a_worse_model_than_the_published_one(tiny_run, published,
                                                      tmp_path, valid_report):
  base = str(tmp_path / "export")
  better = versions.version_dir(base, 1)
  shutil.copytree(published, better)
  stored = versions.read_metrics(better)
  stored["metrics"]["cvr_auc"] = valid_report["cvr_auc"] + 0.05
  versions.write_extra(better, {versions.METRICS_FILE: json.dumps(stored)})
  with pytest.raises(validation.ExportRefused,
                     match=r"cvr_auc .* below version 1's .*--max_auc_drop"):
    exporter.export(tiny_run["model_dir"], base,
                             data_dir=tiny_run["data_dir"], policy=NO_FLOORS,
                             log=lambda _: None)
  assert versions.versions(base) == [1]
  assert not [n for n in os.listdir(base) if n.startswith(".tmp")]


def test_main_publishes_next_version_and_keeps_newest(tiny_run, published,
                                                      tmp_path, capsys,
                                                      valid_report):
  base = str(tmp_path / "export")
  for version in (1, 2):  # two published versions with the same metrics
    shutil.copytree(published, versions.version_dir(base, version))
  status = _run_main(export_savedmodel, [
      f"--model_dir={tiny_run['model_dir']}", f"--data_dir={tiny_run['data_dir']}",
      f"--export_base={base}", "--keep=2", "--warmup_records=3",
      "--min_ctr_auc=0", "--min_cvr_auc=0", "--min_ctcvr_auc=0"])
  assert status == 0
  out = capsys.readouterr().out
  assert f"exported SavedModel: {versions.version_dir(base, 3)}" in out
  assert versions.versions(base) == [2, 3]
  assert sorted(os.listdir(base)) == ["2", "3"]
  new = tf.saved_model.load(versions.version_dir(base, 3))
  assert set(new.signatures["serving_default"].structured_outputs) == set(
      F.SERVING_OUTPUTS)  # no tau without --include_tau
  assert len(requests.read_warmup(
      versions.extra_path(versions.version_dir(base, 3), versions.WARMUP_FILE))) == 5


def test_main_requires_the_data_dir(tiny_run, tmp_path):
  from absl import app
  with pytest.raises(app.UsageError, match="--data_dir is required"):
    _run_main(export_savedmodel, [f"--model_dir={tiny_run['model_dir']}",
                                  f"--export_base={tmp_path}"])


def test_prune_removes_oldest_and_never_the_new_version(tmp_path):
  base = str(tmp_path)
  for version in (1, 2, 3, 4, 5):
    os.makedirs(os.path.join(base, str(version), "variables"))
  assert versions.prune(base, keep=2, protect=5) == [1, 2, 3]
  assert versions.versions(base) == [4, 5]
  # A newer version written meanwhile: the protected one stays anyway.
  assert versions.prune(base, keep=1, protect=4) == []
  assert versions.versions(base) == [4, 5]
  assert sorted(os.listdir(base)) == ["4", "5"]
  with pytest.raises(ValueError, match="keep must be >= 1"):
    versions.prune(base, keep=0, protect=5)


def test_validation_problems_and_policy_errors():
  report = {"ctr_auc": 0.70, "cvr_auc": 0.60, "ctcvr_auc": float("nan")}
  previous = {"metrics": {"ctr_auc": 0.72, "cvr_auc": 0.70, "ctcvr_auc": 0.8}}
  found = validation.problems(report, validation.Policy(
      min_auc={"ctr": 0.75}, max_auc_drop=0.05), previous, 7)
  assert len(found) == 3
  assert "ctr_auc 0.7000 is below the floor 0.7500" in found[0]
  assert "cvr_auc 0.6000 is 0.1000 below version 7's 0.7000" in found[1]
  assert "ctcvr_auc is nan" in found[2]
  assert validation.problems(report | {"ctcvr_auc": 0.8}, validation.Policy(
      max_auc_drop=0.2), previous, 7) == []
  with pytest.raises(ValueError, match="unknown tasks \\['click'\\]"):
    validation.Policy(min_auc={"click": 0.5})
  with pytest.raises(ValueError, match="max_auc_drop must be >= 0"):
    validation.Policy(max_auc_drop=-1)


def test_warmup_size_is_bounded_and_labels_are_dropped(tiny_run):
  schema = tiny_run["schema"]
  with pytest.raises(ValueError, match="at most 1000"):
    requests.warmup_logs([b""] * 999, schema)
  with pytest.raises(ValueError, match="at least one example"):
    requests.warmup_logs([], schema)
  labelled = _example(click=1, conversion=0, **{schema.categorical[0].name: 3})
  (clean,) = requests.feature_examples([labelled], schema)
  assert set(tf.train.Example.FromString(clean).features.feature) == {
      schema.categorical[0].name}
