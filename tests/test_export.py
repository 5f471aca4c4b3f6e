"""SavedModel export: signatures, versions, reload in a fresh process."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from export import export_savedmodel
from pipelines import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_FRESH_PROCESS_SCRIPT = r"""
import json, sys
import tensorflow as tf
saved_model, records_path, num = sys.argv[1], sys.argv[2], int(sys.argv[3])
assert "tf_keras" not in sys.modules
loaded = tf.saved_model.load(saved_model)
examples = [r.numpy() for r in tf.data.TFRecordDataset(records_path).take(num)]
by_examples = loaded.signatures["serving_default"](examples=tf.constant(examples))
spec = {k: tf.io.FixedLenFeature([], v.dtype)
        for k, v in loaded.signatures["predict_features"].structured_input_signature[1].items()}
parsed = tf.io.parse_example(tf.constant(examples), spec)
by_features = loaded.signatures["predict_features"](**parsed)
print(json.dumps({"examples": {k: v.numpy().tolist() for k, v in by_examples.items()},
                  "features": {k: v.numpy().tolist() for k, v in by_features.items()},
                  "tf_keras_loaded": "tf_keras" in sys.modules}))
"""


def _in_memory(model, schema, path, num):
  examples = tf.constant([r.numpy() for r in tf.data.TFRecordDataset(path).take(num)])
  outputs = model(tf.io.parse_example(examples, schema.parse_spec(with_labels=False)),
                  training=False)
  return {k: outputs[k].numpy() for k in F.SERVING_OUTPUTS}


def test_export_reloads_in_fresh_process_with_same_outputs(tiny_run, tmp_path):
  path = export_savedmodel.export(tiny_run["model_dir"], str(tmp_path / "export"))
  assert path == str(tmp_path / "export" / "1")
  shard = records.list_shards(tiny_run["data_dir"], "test")[0]
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS_SCRIPT, path, shard,
                         "50"], capture_output=True, text=True, env=env,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  reloaded = json.loads(done.stdout.strip().splitlines()[-1])
  assert not reloaded["tf_keras_loaded"]
  expected = _in_memory(tiny_run["model"], tiny_run["schema"], shard, 50)
  for signature in ("examples", "features"):
    assert set(reloaded[signature]) == set(F.SERVING_OUTPUTS)
    for key, values in expected.items():
      np.testing.assert_allclose(reloaded[signature][key], values, atol=1e-6)


def test_signatures_names_dtypes_and_assets(tiny_run, tmp_path):
  path = export_savedmodel.export(tiny_run["model_dir"], str(tmp_path / "export"),
                                  include_tau=True)
  loaded = tf.saved_model.load(path)
  serving = loaded.signatures["serving_default"]
  assert list(serving.structured_input_signature[1]) == ["examples"]
  assert serving.structured_input_signature[1]["examples"].dtype == tf.string
  outputs = serving.structured_outputs
  assert set(outputs) == {"ctr", "cvr", "ctcvr", "tau"}
  assert all(o.dtype == tf.float32 and o.shape.as_list() == [None]
             for o in outputs.values())
  inputs = loaded.signatures["predict_features"].structured_input_signature[1]
  assert set(inputs) == set(tiny_run["schema"].feature_names)
  for name in ("config.json", F.SCHEMA_FILE):
    assert os.path.exists(os.path.join(path, "assets.extra", name))


def test_versions_increase_and_missing_features_take_defaults(tiny_run, tmp_path):
  base = str(tmp_path / "export")
  first = export_savedmodel.export(tiny_run["model_dir"], base)
  second = export_savedmodel.export(tiny_run["model_dir"], base)
  assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
  assert export_savedmodel.versions(base) == [1, 2]
  assert not [n for n in os.listdir(base) if n.startswith(".tmp")]
  loaded = tf.saved_model.load(second)
  empty = tf.train.Example().SerializeToString()
  out = loaded.signatures["serving_default"](examples=tf.constant([empty]))
  assert np.all(np.isfinite(out["ctr"].numpy()))
