"""Tests of pipelines/training/cluster.py: TF_CONFIG, and training jobs on real
clusters: two multi-worker-mirrored workers on localhost and a parameter-server
job with an in-process cluster (each in subprocesses)."""

import json
import subprocess

import numpy as np
import pytest

from adaftr_tf import features as F
from pipelines.training import cluster
from tests.helpers.jobs import (ROOT, TIMEOUT_S, check, env, read_json,
                                train_command)


def test_invalid_tf_config_is_named(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
    cluster.tf_config()


@pytest.fixture(scope="module")
def data(tiny_data):
  """(data_dir, schema) of the tiny preset's data: 2 shards per split."""
  return tiny_data, F.FeatureSchema.load(tiny_data)


@pytest.mark.slow  # a cluster of training subprocesses
def test_two_workers_on_localhost(data, tmp_path):
  data_dir, _ = data
  ports = cluster.free_ports(2)
  spec = {"worker": [f"localhost:{p}" for p in ports]}
  processes = []
  for index in range(2):  # own model dirs: who writes what is visible
    tf_config = json.dumps({"cluster": spec,
                            "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(
        train_command(tmp_path / f"model{index}", data_dir,
                      "--strategy=multi_worker_mirrored",
                      overrides=["train.checkpoint_every_steps=2"]),
        cwd=ROOT, env=env(TF_CONFIG=tf_config), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  outputs = []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()  # one failed worker leaves the other waiting forever
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-4000:]
  chief, other = (tmp_path / "model0"), (tmp_path / "model1")
  for name in ("config.json", "schema.json", "history.json",
               "valid_metrics.json", "train_state.json", "best/weights.index",
               "checkpoints/epoch-001.index", "steps/step-2.index",
               "steps/step-4.index"):
    assert (chief / name).exists(), name
  assert not other.exists()  # the non-chief wrote nothing there
  state = read_json(chief / "train_state.json")
  assert state["global_step"] == 4 and state["workers"] == 2
  assert (state["replicas"], state["per_replica_batch"]) == (2, 64)
  assert "2 replica(s) in sync on 2 worker(s)" in outputs[0]
  assert "worker:1 (not chief" in outputs[1]
  assert "worker finished at global step 4" in outputs[1]


@pytest.mark.slow  # a cluster of training subprocesses
def test_parameter_server_with_sharded_embeddings(data, tmp_path):
  data_dir, _ = data
  model_dir = tmp_path / "model"
  done = subprocess.run(
      train_command(model_dir, data_dir, "--strategy=parameter_server",
                    "--in_process_cluster=2,2",
                    # and the moving average's swaps on sharded variables
                    overrides=["runtime.ps_min_shard_bytes=1024",
                               "train.ema_momentum=0.9"]),
      cwd=ROOT, env=env(), capture_output=True, text=True,
      timeout=TIMEOUT_S, check=False)
  output = check(done)
  assert "2 workers step asynchronously, each on a batch of 128" in output
  assert ("field_embedding/table: 2 shards on ['/job:ps/replica:0/task:0', "
          "'/job:ps/replica:0/task:1']") in output
  state = read_json(model_dir / "train_state.json")
  assert state["global_step"] == 4 and state["strategy"] == "parameter_server"
  # The sharded model's weights restored into the single-device model.
  valid = read_json(model_dir / "valid_metrics.json")
  assert np.isfinite(valid["ctr_auc"]) and valid["best_epoch"] == 1
