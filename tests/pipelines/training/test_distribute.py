"""Tests of pipelines/training/distribute.py: strategies, batch layouts, shards,
and, with 2 logical CPU devices, negatives across replicas and reduction.

Logical devices change a process for good, so the mirrored checks run in a
subprocess (tests/helpers/mirrored_checks.py); the rest runs here. Clusters
(multi-worker, parameter servers): test_cluster.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import overrides
from pipelines.training import distribute
from tests.helpers.jobs import ROOT, TIMEOUT_S, check, env

MIRRORED_CHECKS = os.path.join(ROOT, "tests", "helpers", "mirrored_checks.py")


@pytest.fixture(scope="module")
def data(tiny_data):
  """(data_dir, schema) of the tiny preset's data: 2 shards per split."""
  return tiny_data, F.FeatureSchema.load(tiny_data)


# --- configuration errors, before any training --------------------------------

def test_strategy_errors_name_the_problem(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="strategy='nccl' is not valid; choose "
                     "one of .*'parameter_server'"):
    distribute.make_strategy("nccl")
  with pytest.raises(ValueError, match="needs TF_CONFIG with the job"):
    distribute.make_strategy("multi_worker_mirrored")
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": {"worker": ["localhost:1"]},
       "task": {"type": "worker", "index": 0}}))
  with pytest.raises(ValueError, match=r"job\(s\) \['ps'\]"):
    distribute.make_strategy("parameter_server")
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(ValueError, match=r"--devices \['/gpu:7'\] not found"):
    distribute.make_strategy("mirrored", devices=["/gpu:7"])
  with pytest.raises(ValueError, match="only for --strategy=mirrored"):
    distribute.make_strategy("default", devices=["/cpu:0"])


def test_cpu_devices_must_be_set_before_tensorflow_starts():
  tf.constant(1.0)  # TensorFlow is initialised in this process
  have = len(tf.config.list_logical_devices("CPU"))
  assert distribute.configure_cpu_devices(have)  # a no-op is fine
  with pytest.raises(ValueError, match="already initialised"):
    distribute.configure_cpu_devices(have + 2)
  with pytest.raises(ValueError, match="must be >= 1"):
    distribute.configure_cpu_devices(0)


def test_layout_reports_and_checks_batches(data):
  layout = distribute.make_layout("mirrored", 4, 1, 128, 512)
  assert (layout.per_replica_batch, layout.eval_per_replica_batch) == (32, 128)
  assert "global batch 128 = 4 x per-replica batch 32" in layout.describe()
  with pytest.raises(ValueError, match="train.batch_size=100 is not divisible "
                     "by the 3 replicas"):
    distribute.make_layout("mirrored", 3, 1, 100, 300)
  ps = distribute.make_layout("parameter_server", 1, 5, 128, 512)
  assert "5 workers step asynchronously" in ps.describe()
  data_dir, _ = data
  three = distribute.make_layout("multi_worker_mirrored", 3, 3, 96, 96)
  with pytest.raises(ValueError, match="has 2 file.* runs 3 workers"):
    distribute.check_shards(three, data_dir, ("train", "valid"))
  distribute.check_shards(ps, data_dir, ("train",))  # ps workers read all


@pytest.mark.reliability
def test_a_replica_batch_too_small_for_local_negatives_is_refused():
  layout = distribute.make_layout("mirrored", 2, 1, 2, 2)
  local = overrides.apply(experiments.get_preset("tiny"), [
      "train.batch_size=2", "runtime.cross_replica_negatives=false",
      "loss.negatives=in_batch"])
  with pytest.raises(ValueError, match=r"train.batch_size=2 gives the "
                     r"contrastive loss batches of 1 instance\(s\) under "
                     r"--strategy=mirrored \(2 replica\(s\)\)"):
    distribute.check_negatives(layout, local)
  distribute.check_negatives(layout, overrides.apply(
      local, ["runtime.cross_replica_negatives=true"]))  # global batch of 2: ok
  distribute.check_negatives(layout, overrides.apply(
      local, ["model.name=multitask"]))  # no contrastive loss: ok
  with pytest.raises(ValueError, match="random_one negatives need at least 2"):
    distribute.check_negatives(layout, overrides.apply(local, [
        "runtime.cross_replica_negatives=true", "loss.negatives=random_one"]))


# --- 2 logical CPU devices (mirrored) -----------------------------------------

@pytest.fixture(scope="module")
def mirrored(data, tmp_path_factory):
  data_dir, _ = data
  model_dir = str(tmp_path_factory.mktemp("mirrored") / "model")
  done = subprocess.run(
      [sys.executable, MIRRORED_CHECKS, data_dir, model_dir], cwd=ROOT,
      env=env(), capture_output=True, text=True, timeout=TIMEOUT_S,
      check=False)
  output = check(done)
  return json.loads(done.stdout.strip().splitlines()[-1]), model_dir, output


@pytest.mark.slow  # the mirrored checks' subprocess
def test_global_negatives_equal_one_replica(mirrored):
  report = mirrored[0]
  assert report["replicas"] == 2 and len(report["devices"]) == 2
  same = report["negatives"]["global"]
  assert same["loss_diff"] < 1e-5
  assert same["grad_diff"] < 1e-5 * max(1.0, same["grad_scale"])
  assert same["num_gradients"] > 20
  # Local negatives see half the candidates: another loss, other gradients.
  local = report["negatives"]["local"]
  assert local["loss_diff"] > 1e-3 and local["grad_diff"] > 1e-3


@pytest.mark.slow  # the mirrored checks' subprocess
def test_reader_gives_two_replicas_one_devices_global_batches(mirrored):
  """Row blocks, shuffled, resumed: the 2 replicas' batches of each step
  together are one device's global batch, row for row."""
  reader = mirrored[0]["reader"]
  assert reader["steps"] == [11, 11] and reader["replica_rows"] == [32, 32]
  assert reader["equal"]


@pytest.mark.slow  # the mirrored checks' subprocess
def test_gradient_agreement_mode_equals_one_replica(mirrored):
  """The per-instance agreement needs no cross-replica traffic: 2 replicas
  give one device's loss and gradients."""
  same = mirrored[0]["negatives"]["agreement"]
  assert same["loss_diff"] < 1e-5
  assert same["grad_diff"] < 1e-5 * max(1.0, same["grad_scale"])
  assert same["num_gradients"] > 20


@pytest.mark.slow  # the mirrored checks' subprocess
def test_meta_gradient_signal_per_replica_equals_one_device(mirrored):
  """The meta-gradient's held-out half and alignment half are each
  replica's own rows: with local negatives, 2 replicas give the mean of one
  device's loss and gradients on each replica's rows, and train tau's
  network."""
  same = mirrored[0]["meta_gradient"]
  assert same["loss_diff"] < 1e-5
  assert same["grad_diff"] < 1e-5 * max(1.0, same["grad_scale"])
  assert same["relatedness_grad"] > 0


@pytest.mark.slow  # the mirrored checks' subprocess
def test_global_negatives_with_uneven_replica_batches(mirrored):
  uneven = mirrored[0]["uneven"]
  assert uneven["sizes"] == [40, 24]
  assert uneven["loss_diff"] < 1e-5


@pytest.mark.slow  # the mirrored checks' subprocess
def test_loss_and_metrics_reduce_like_one_replica(mirrored):
  reduction = mirrored[0]["reduction"]
  for logs in (*reduction["fit_logs"], *reduction["evaluate_logs"]):
    assert {"loss", "ctr_auc", "cvr_auc", "ctcvr_auc", "cl_loss"} <= set(logs)
  assert reduction["fit_diff"] < 1e-5       # loss, AUCs, log losses
  assert reduction["evaluate_diff"] < 1e-5  # AUC accumulated over replicas
  assert reduction["weight_diff"] < 1e-5    # gradients summed, not averaged


@pytest.mark.slow  # the mirrored checks' subprocess
def test_mirrored_training_job(mirrored):
  report, model_dir, output = mirrored
  train = report["train"]
  assert train["layout"]["replicas"] == 2
  assert train["layout"]["per_replica_batch"] == 32
  assert train["global_step"] == 4 and np.isfinite(train["ctr_auc"])
  # LazyAdam's sparse row update ran for the embedding table.
  assert any("embedding" in name for name in train["lazy_sparse_updates"])
  assert "global batch 64 = 2 x per-replica batch 32" in output
  assert os.path.exists(os.path.join(model_dir, "steps", "step-4.index"))


@pytest.mark.slow  # the mirrored checks' subprocess
def test_a_teachers_tau_under_the_mirrored_strategy(mirrored):
  """loss.tau_source=teacher with 2 replicas: the teacher (the mirrored job's
  model) sets tau in both, within the student's bounds; so do two
  cross-fitted teachers."""
  teacher = mirrored[0]["teacher"]
  assert teacher["global_step"] == 2
  assert np.isfinite(teacher["cl_loss"]) and teacher["cl_loss"] > 0
  assert 0.2 <= teacher["tau_mean"] <= 1.0
  # Two cross-fitted teachers (each trained mirrored without one fold).
  assert teacher["crossfit_step"] == 2
  assert np.isfinite(teacher["crossfit_cl_loss"])
  assert teacher["crossfit_cl_loss"] > 0
  assert 0.2 <= teacher["crossfit_tau_mean"] <= 1.0
