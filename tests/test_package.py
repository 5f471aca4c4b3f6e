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
