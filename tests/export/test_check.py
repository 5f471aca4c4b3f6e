"""Tests of the `python -m export.check` entrypoint: listing, signatures,
warm-up replay, benchmark, REST examples."""

import base64
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from export import check
from export import exporter
from export import requests
from export import validation
from export import versions
from tests.helpers.flags import run_main


def _run_main(argv):
  return run_main(check, argv)


@pytest.fixture(scope="module")
def export_base(tiny_run, tmp_path_factory):
  """A tiny export base holding version 1 (evaluation skipped: the run's report)."""
  base = str(tmp_path_factory.mktemp("check") / "export")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(validation, "evaluate_candidate",
                  lambda *_: dict(tiny_run["valid"]))
    exporter.export(tiny_run["model_dir"], base,
                             data_dir=tiny_run["data_dir"],
                             policy=validation.Policy(min_auc={}),
                             warmup_records=10, log=lambda _: None)
  return base


def test_main_lists_replays_compares_and_benchmarks(tiny_run, export_base,
                                                    tmp_path, capsys):
  report = tmp_path / "latency.json"
  status = _run_main([f"--export_base={export_base}",
                      f"--model_dir={tiny_run['model_dir']}", "--benchmark",
                      "--benchmark_iters=3", "--benchmark_sizes=1,8",
                      f"--benchmark_json={report}", "--profile",
                      "--profile_records=8", "--profile_runs=2"])
  out = capsys.readouterr().out
  assert status == 0, out
  assert "version 1: ctr_auc" in out and "12 warm-up records" in out
  assert "signature_def['serving_default']:" in out
  assert "  inputs['examples'] dtype: DT_STRING shape: (-1)" in out
  assert "  outputs['ctcvr'] dtype: DT_FLOAT shape: (-1)" in out
  name = tiny_run["schema"].categorical[0].name
  assert f"  inputs['{name}'] dtype: DT_INT64 shape: (-1)" in out
  assert ("replayed 12 warm-up records (predict_features: 1, serving_default: 11)"
          in out)
  assert "max |SavedModel - checkpoint" in out and "check passed" in out
  rows = json.loads(report.read_text())["rows"]
  assert [(r["signature"], r["records"]) for r in rows] == [
      ("serving_default", 1), ("predict_features", 1),
      ("serving_default", 8), ("predict_features", 8)]
  assert all(0 < r["p50_ms"] <= r["p99_ms"] for r in rows)
  assert "| serving_default | 8 |" in out
  # --profile: the request's time by stage, printed and stored.
  assert "serving_default, 8 records per request, 2 traced runs:" in out
  profile = json.loads(report.read_text())["profile"]
  assert profile["records"] == 8 and profile["stages"]["experts"] > 0


def test_main_fails_on_a_bad_warmup_record(export_base, tmp_path, capsys):
  base = str(tmp_path / "export")
  path = versions.version_dir(base, 4)
  shutil.copytree(versions.version_dir(export_base, 1), path)
  logs = requests.read_warmup(versions.extra_path(path, versions.WARMUP_FILE))
  bad = prediction_log_pb2.PredictionLog()
  bad.CopyFrom(logs[0])
  bad.predict_log.request.model_spec.signature_name = "no_such_signature"
  requests.write_warmup(versions.extra_path(path, versions.WARMUP_FILE), logs + [bad])
  assert _run_main([f"--export_base={base}", "--benchmark"]) == 1
  captured = capsys.readouterr()
  assert "record 12: signature 'no_such_signature' not in" in captured.err
  assert "benchmark skipped" in captured.out


def test_main_refuses_an_empty_base_and_unknown_version(tmp_path, export_base):
  with pytest.raises(FileNotFoundError, match="no numbered SavedModel version"):
    _run_main([f"--export_base={tmp_path}"])
  with pytest.raises(FileNotFoundError, match=r"version 9 not under .*present: \[1\]"):
    _run_main([f"--export_base={export_base}", "--version=9"])
  from absl import app
  for flag in ("--profile_records=0", "--benchmark_iters=0"):
    with pytest.raises(app.UsageError, match="must be >= 1"):
      _run_main([f"--export_base={export_base}", flag])


def test_rest_examples_mean_the_same_records(tiny_run, export_base, capsys):
  loaded = tf.saved_model.load(versions.version_dir(export_base, 1))
  bodies = {}
  for signature in ("predict_features", "serving_default"):
    assert _run_main([f"--export_base={export_base}",
                      f"--rest_example={signature}", "--rest_rows=3"]) == 0
    bodies[signature] = json.loads(capsys.readouterr().out)
    assert bodies[signature]["signature_name"] == signature
  # What TF Serving does with each body: JSON values -> tensors of the
  # signature's input dtypes (row format), base64 -> bytes.
  spec = loaded.signatures["predict_features"].structured_input_signature[1]
  rows = bodies["predict_features"]["instances"]
  assert len(rows) == 3 and set(rows[0]) == set(tiny_run["schema"].feature_names)
  by_features = loaded.signatures["predict_features"](
      **{k: tf.constant([r[k] for r in rows], s.dtype) for k, s in spec.items()})
  examples = [base64.b64decode(r["examples"]["b64"])
              for r in bodies["serving_default"]["instances"]]
  by_examples = loaded.signatures["serving_default"](examples=tf.constant(examples))
  for key in ("ctr", "cvr", "ctcvr"):
    np.testing.assert_allclose(by_features[key].numpy(), by_examples[key].numpy(),
                               atol=1e-7)
