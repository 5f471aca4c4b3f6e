"""Importing adaftr_tf where tf.keras is Keras 3 fails with a clear message."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_with_keras3_raises_import_error_saying_what_to_set():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_USE_LEGACY_KERAS"] = "0"
  code = "import tensorflow; import adaftr_tf"
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode != 0
  assert "ImportError" in done.stderr
  assert "TF_USE_LEGACY_KERAS=1" in done.stderr


def test_import_first_sets_legacy_keras():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  code = ("import adaftr_tf, tensorflow as tf; "
          "assert tf.keras.__name__.startswith('tf_keras'), tf.keras.__name__")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 0, done.stderr[-2000:]


ENTRYPOINTS = ("pipelines.train", "pipelines.demo", "pipelines.convert",
               "pipelines.benchmark_quality", "pipelines.benchmark_speed",
               "pipelines.sweep", "export.export_savedmodel", "export.check",
               "export.score")


def test_every_entrypoint_imports_into_one_process_in_any_order():
  """Tests import several entrypoints into one pytest process; a flag that two
  of them define must go through pipelines.cli, or absl refuses the second."""
  for order in (ENTRYPOINTS, tuple(reversed(ENTRYPOINTS))):
    code = ("import importlib, os\n"
            "os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
            f"for name in {order!r}:\n"
            "  importlib.import_module(name)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_flags_are_defined_only_through_pipelines_cli():
  offenders = []
  for folder in ("adaftr_tf", "pipelines", "export"):
    for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
      for name in names:
        path = os.path.join(dirpath, name)
        if not name.endswith(".py") or path.endswith(os.path.join(
            "pipelines", "cli.py")):
          continue
        with open(path) as f:
          if "flags.DEFINE_" in f.read():
            offenders.append(os.path.relpath(path, ROOT))
  assert not offenders, f"define flags with pipelines.cli in {offenders}"


def test_begin_job_refuses_stray_arguments_and_missing_flags():
  from absl import app
  from absl import flags
  from absl.testing import flagsaver
  import pytest
  from pipelines import cli
  cli.define_string("begin_job_probe", None, "test flag")
  with flagsaver.flagsaver():
    flags.FLAGS(["job"])
    with pytest.raises(app.UsageError, match=r"unexpected arguments: \['x'\]"):
      cli.begin_job(["job", "x"])
    with pytest.raises(app.UsageError, match="--begin_job_probe is required"):
      cli.begin_job(["job"], required=("begin_job_probe",))
    flags.FLAGS.begin_job_probe = "set"
    cli.begin_job(["job"], required=("begin_job_probe",))
