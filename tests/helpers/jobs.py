"""Training jobs in subprocesses: commands, environment, output checks."""

import json
import os
import shutil
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT_S = 420
FAST = ["train.steps_per_epoch=4", "train.steps_per_execution=1"]


def env(**extra):
  """This process's environment, quiet, CPU only, without TF_CONFIG."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def train_command(model_dir, data_dir, *flags_, overrides=()):
  """`python -m pipelines.train` on the tiny preset, 4 quick steps."""
  return [sys.executable, "-m", "pipelines.train", "--preset=tiny",
          f"--model_dir={model_dir}", f"--data_dir={data_dir}", "--verbose=0",
          *flags_, *[f"--override={o}" for o in (*FAST, *overrides)]]


def check(done: subprocess.CompletedProcess) -> str:
  """The output of a finished process; fails the test unless it exited 0."""
  output = done.stdout + done.stderr
  assert done.returncode == 0, output[-4000:]
  return output


def read_json(path):
  with open(path) as f:
    return json.load(f)


def copy_run_with(model_dir, copy, name, edit):
  """Copies a trained run's folder to `copy` with `edit(dict)` applied to
  one of its JSON files (e.g. config.json); returns `copy` as a string."""
  shutil.copytree(model_dir, copy)
  path = os.path.join(copy, name)
  payload = read_json(path)
  edit(payload)
  with open(path, "w") as f:
    json.dump(payload, f)
  return str(copy)
