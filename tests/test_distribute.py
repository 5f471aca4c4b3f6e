"""tf.distribute: strategies, negatives across replicas, reduction, clusters.

Logical devices and clusters change a process for good, so everything that
needs them runs in subprocesses: tests/mirrored_checks.py (2 logical CPU
devices), two multi-worker-mirrored workers on localhost, and a
parameter-server job with an in-process cluster. The rest runs here.
"""

import json
import os
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import overrides

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from pipelines.training import cluster
from pipelines.training import distribute
from pipelines.data import reader
from pipelines.data import synthetic
from pipelines import train as train_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
TIMEOUT_S = 420
FAST = ["train.steps_per_epoch=4", "train.steps_per_execution=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  config = experiments.get_preset("tiny").data.synthetic  # 2 shards per split
  data_dir = str(tmp_path_factory.mktemp("distribute") / "data")
  return data_dir, synthetic.ensure_synthetic_dataset(config, data_dir,
                                                      log=lambda _: None)


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def _train_command(model_dir, data_dir, *flags_, overrides=()):
  return [sys.executable, "-m", "pipelines.train", "--preset=tiny",
          f"--model_dir={model_dir}", f"--data_dir={data_dir}", "--verbose=0",
          *flags_, *[f"--override={o}" for o in (*FAST, *overrides)]]


def _check(done: subprocess.CompletedProcess) -> str:
  output = done.stdout + done.stderr
  assert done.returncode == 0, output[-4000:]
  return output


def _json(path):
  with open(path) as f:
    return json.load(f)


# --- configuration errors, before any training ----------------------------

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
  with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
    cluster.tf_config()
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


@pytest.mark.parametrize("argv, error, message", [
    (["--strategy=multi_worker_mirrored"], ValueError, "needs TF_CONFIG"),
    (["--in_process_cluster=2,1"], Exception, "only for --strategy="
     "parameter_server"),
    (["--override=runtime.strategy=parameter_server",
      "--override=runtime.deterministic=true"], ValueError,
     "cannot hold under runtime.strategy=parameter_server"),
    (["--override=runtime.mixed_precision=float64"], ValueError,
     "runtime.mixed_precision='float64' is not valid"),
])
def test_entrypoint_refuses_before_writing(tmp_path, monkeypatch, argv,
                                           error, message):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["train", f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
           *argv])
    with pytest.raises(error, match=message):
      train_main.main(["train"])
  assert not os.path.exists(tmp_path / "model")


# --- 2 logical CPU devices (mirrored) ---------------------------------------

@pytest.fixture(scope="module")
def mirrored(data, tmp_path_factory):
  data_dir, _ = data
  model_dir = str(tmp_path_factory.mktemp("mirrored") / "model")
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tests", "helpers", "mirrored_checks.py"),
       data_dir, model_dir], cwd=ROOT, env=_env(), capture_output=True,
      text=True, timeout=TIMEOUT_S, check=False)
  output = _check(done)
  return json.loads(done.stdout.strip().splitlines()[-1]), model_dir, output


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


def test_gradient_agreement_mode_equals_one_replica(mirrored):
  """The per-instance agreement needs no cross-replica traffic: 2 replicas
  give one device's loss and gradients."""
  same = mirrored[0]["negatives"]["agreement"]
  assert same["loss_diff"] < 1e-5
  assert same["grad_diff"] < 1e-5 * max(1.0, same["grad_scale"])
  assert same["num_gradients"] > 20


def test_global_negatives_with_uneven_replica_batches(mirrored):
  uneven = mirrored[0]["uneven"]
  assert uneven["sizes"] == [40, 24]
  assert uneven["loss_diff"] < 1e-5


def test_loss_and_metrics_reduce_like_one_replica(mirrored):
  reduction = mirrored[0]["reduction"]
  for logs in (*reduction["fit_logs"], *reduction["evaluate_logs"]):
    assert {"loss", "ctr_auc", "cvr_auc", "ctcvr_auc", "cl_loss"} <= set(logs)
  assert reduction["fit_diff"] < 1e-5       # loss, AUCs, log losses
  assert reduction["evaluate_diff"] < 1e-5  # AUC accumulated over replicas
  assert reduction["weight_diff"] < 1e-5    # gradients summed, not averaged


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


# --- multi-worker mirrored: 2 processes on localhost ------------------------

def test_two_workers_on_localhost(data, tmp_path):
  data_dir, _ = data
  ports = cluster.free_ports(2)
  spec = {"worker": [f"localhost:{p}" for p in ports]}
  processes = []
  for index in range(2):  # own model dirs: who writes what is visible
    tf_config = json.dumps({"cluster": spec,
                            "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(
        _train_command(tmp_path / f"model{index}", data_dir,
                       "--strategy=multi_worker_mirrored",
                       overrides=["train.checkpoint_every_steps=2"]),
        cwd=ROOT, env=_env(TF_CONFIG=tf_config), text=True,
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
  state = _json(chief / "train_state.json")
  assert state["global_step"] == 4 and state["workers"] == 2
  assert (state["replicas"], state["per_replica_batch"]) == (2, 64)
  assert "2 replica(s) in sync on 2 worker(s)" in outputs[0]
  assert "worker:1 (not chief" in outputs[1]
  assert "worker finished at global step 4" in outputs[1]


# --- parameter servers: in-process cluster ----------------------------------

def test_parameter_server_with_sharded_embeddings(data, tmp_path):
  data_dir, _ = data
  model_dir = tmp_path / "model"
  done = subprocess.run(
      _train_command(model_dir, data_dir, "--strategy=parameter_server",
                     "--in_process_cluster=2,2",
                     overrides=["runtime.ps_min_shard_bytes=1024"]),
      cwd=ROOT, env=_env(), capture_output=True, text=True,
      timeout=TIMEOUT_S, check=False)
  output = _check(done)
  assert "2 workers step asynchronously, each on a batch of 128" in output
  assert ("field_embedding/table: 2 shards on ['/job:ps/replica:0/task:0', "
          "'/job:ps/replica:0/task:1']") in output
  state = _json(model_dir / "train_state.json")
  assert state["global_step"] == 4 and state["strategy"] == "parameter_server"
  # The sharded model's weights restored into the single-device model.
  valid = _json(model_dir / "valid_metrics.json")
  assert np.isfinite(valid["ctr_auc"]) and valid["best_epoch"] == 1


# --- options: mixed precision, XLA ------------------------------------------

def _batch(data, size=64):
  data_dir, schema = data
  return next(iter(reader.make_dataset(data_dir, "train", schema, size,
                                          training=False)))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_losses_in_float32(data, policy):
  config = overrides.apply(
      experiments.get_preset("tiny"), [f"runtime.mixed_precision={policy}"])
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    model = models.compile_model(models.build_model(config, data[1]), config)
    batch = _batch(data)
    outputs = model(batch[0])
    before = [v.numpy() for v in model.trainable_variables]
    model.train_step(batch)  # eager: builds, scales the loss if float16
    loss = model.compute_loss(batch, training=True)
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)
  assert outputs[F.H_CTR].dtype == tf.as_dtype(policy.split("_")[1])
  assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
  if policy == "mixed_float16":
    assert isinstance(model.optimizer,
                      tf_keras.mixed_precision.LossScaleOptimizer)
  after = model.trainable_variables
  assert all(v.dtype == tf.float32 for v in after)
  assert sum(not np.array_equal(b, a.numpy())
             for b, a in zip(before, after)) > len(after) // 2


def test_info_nce_similarities_are_float32(data):
  from adaftr_tf.tasks import ContrastiveTask
  u = tf.math.l2_normalize(tf.random.stateless_normal([8, 4], (1, 2)), -1)
  v = tf.math.l2_normalize(tf.random.stateless_normal([8, 4], (3, 4)), -1)
  tau = tf.fill([8], 0.1)
  exact = ContrastiveTask()(u, v, tau)
  half = ContrastiveTask()(tf.cast(u, tf.bfloat16), tf.cast(v, tf.bfloat16),
                           tf.cast(tau, tf.bfloat16))
  assert half.dtype == tf.float32
  np.testing.assert_allclose(half, exact, atol=0.05)


def test_jit_compile_reaches_keras(data):
  config = overrides.apply(experiments.get_preset("tiny"),
                                      ["runtime.jit_compile=true"])
  model = models.compile_model(models.build_model(config, data[1]), config)
  assert model._jit_compile is True  # pylint: disable=protected-access


@pytest.mark.skipif(not os.environ.get("ADAFTR_SLOW_TESTS"),
                    reason="XLA compilation takes minutes on 2 CPU cores; "
                    "set ADAFTR_SLOW_TESTS=1")
def test_xla_and_bfloat16_training_job(data, tmp_path):
  done = subprocess.run(
      _train_command(tmp_path / "model", data[0], overrides=[
          "runtime.jit_compile=true", "runtime.mixed_precision=mixed_bfloat16"]),
      cwd=ROOT, env=_env(), capture_output=True, text=True,
      timeout=TIMEOUT_S, check=False)
  _check(done)
  valid = _json(tmp_path / "model" / "valid_metrics.json")
  assert np.isfinite(valid["ctcvr_logloss"])
