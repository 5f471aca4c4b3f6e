"""Tests of the `python -m pipelines.data_service` entrypoint: usage errors,
and a dispatcher and two workers started as processes that serve one pass of
training rows exactly once."""

import re
import subprocess
import sys

from absl import app
import numpy as np
import pytest

from adaftr_tf import features as F
from adaftr_tf.config import ConfigError
from pipelines import data_service as main_module
from pipelines.data import service
from pipelines.data import synthetic
from tests.helpers import jobs
from tests.helpers.data import SMALL_SYNTHETIC
from tests.helpers.data import concat_rows
from tests.helpers.data import sorted_rows
from tests.helpers.flags import run_main


@pytest.mark.parametrize("argv, error, message", [
    ([], app.UsageError, "--port is required"),
    (["--port=70000"], app.UsageError, r"--port=70000 must lie in \[0, 65535\]"),
    (["--port=0", "--worker_host=h"], app.UsageError,
     "--worker_host needs --dispatcher"),
    (["--port=0", "--dispatcher=nohost"], ConfigError,
     "'nohost' must look like grpc://HOST:PORT or HOST:PORT"),
    (["--port=0", "--dispatcher=h:1", "--worker_host=a b"], ConfigError,
     "must look like grpc://HOST:PORT"),
])
def test_usage_errors(argv, error, message):
  with pytest.raises(error, match=message):
    run_main(main_module, argv, "data_service")


def _serve(*argv):
  """A server process and the first line it prints (once it serves)."""
  process = subprocess.Popen(
      [sys.executable, "-m", "pipelines.data_service", *argv], cwd=jobs.ROOT,
      env=jobs.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
      text=True)
  return process, process.stdout.readline()


@pytest.mark.slow  # three server processes
def test_processes_serve_a_pass_exactly_once(tmp_path):
  data_dir = str(tmp_path / "data")
  schema = synthetic.ensure_synthetic_dataset(SMALL_SYNTHETIC, data_dir,
                                              log=lambda _: None)
  processes = []
  try:
    dispatcher, line = _serve("--port=0")
    processes.append(dispatcher)
    port = re.search(r"dispatcher at grpc://\S+:(\d+): serving", line)
    assert port, line
    address = f"localhost:{port.group(1)}"
    for _ in range(2):
      worker, line = _serve("--port=0", f"--dispatcher={address}",
                            "--worker_host=localhost")
      processes.append(worker)
      assert f"worker of grpc://{address}: serving" in line, line
    keys = [*schema.feature_names, *F.LABEL_KEYS]
    rows = concat_rows(service.one_pass(
        data_dir, "train", schema, 16, address, seed=0, shuffle_buffer=64,
        with_oracle=False))
    np.testing.assert_array_equal(
        sorted_rows(rows, keys),
        sorted_rows(synthetic.generate_split(SMALL_SYNTHETIC, "train"), keys))
  finally:
    for process in processes:
      process.terminate()
      process.wait(timeout=30)
