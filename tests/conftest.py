"""Test environment: Keras 2 through tf-keras, quiet logs, deterministic seeds."""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import pytest  # noqa: E402

def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: starts processes, clusters or whole jobs (kill and "
      "resume, benchmarks), or takes more than ~3 s; `make check` leaves "
      "these out, `make test` runs them")
  config.addinivalue_line(
      "markers", "reliability: fault-injection tests (bad input, numerical, "
      "disk and configuration faults); `make reliability` runs only these")


# Real public sample rows (test fixtures; tests/data/samples/README.md says
# where each file comes from and its terms), copied from ../shared/data so
# that the tests need nothing outside the checkout.
SAMPLE_DATA = os.path.join(ROOT, "tests", "data", "samples")


@pytest.fixture(autouse=True)
def _seeded():
  """Every test starts from the same Python, NumPy and TensorFlow seeds, so
  that a learned threshold does not depend on which tests ran before it in
  the same pytest-xdist worker."""
  import tensorflow as tf
  tf.keras.utils.set_random_seed(0)


@pytest.fixture
def data_service():
  """`grpc://localhost:PORT` of an in-process tf.data service (a dispatcher
  and two workers), stopped when the test ends."""
  from tests.helpers.data_service import local_service
  with local_service(workers=2) as target:
    yield target


@pytest.fixture
def shared_data_dir():
  return SAMPLE_DATA


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
  """The `tiny` preset's synthetic data folder (read-only: copy to damage)."""
  from adaftr_tf import experiments
  from pipelines.data import synthetic
  data_dir = str(tmp_path_factory.mktemp("tiny_data") / "data")
  synthetic.ensure_synthetic_dataset(experiments.get_preset("tiny").data.synthetic,
                                     data_dir, log=lambda _: None)
  return data_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """One tiny AdaFTR training run shared by the tests that need a trained model:
  the paper reading, whose relatedness network serves a per-instance tau (the
  export tests serve it; the library's default, the transfer gate, does not).

  Returns a dict with `config`, `model_dir`, `data_dir`, `schema`, `model` and
  the validation report `valid`.
  """
  from adaftr_tf import experiments
  from pipelines.training import train_lib
  root = tmp_path_factory.mktemp("tiny_run")
  from tests.helpers.data import PAPER_READING
  config = experiments.config_of("tiny", ["train.epochs=2", *PAPER_READING])
  result = train_lib.train(config, str(root / "model"), str(root / "data"),
                          verbose=0, log=lambda _: None)
  return {"config": config, "model_dir": str(root / "model"),
          "data_dir": result["data_dir"], "schema": result["schema"],
          "model": result["model"], "valid": result["valid"]}


@pytest.fixture(scope="session")
def tiny_linear_teacher(tiny_run, tmp_path_factory):
  """A linear gate teacher (model.relatedness_units=(), the transfer gate
  with the steeper map) trained a few steps on the tiny run's data: the
  model directory of what `loss.teacher_field_share` reads."""
  from pipelines.training import train_lib
  from tests.helpers.data import tiny_config
  model_dir = str(tmp_path_factory.mktemp("linear_teacher") / "model")
  train_lib.train(tiny_config("model.relatedness_units=()",
                              "loss.gate_quantile=0.25",
                              "train.steps_per_epoch=4", "train.epochs=1"),
                  model_dir, tiny_run["data_dir"], verbose=0,
                  log=lambda _: None)
  return model_dir
