"""Fixtures of the export tests: one validated, warm export of the shared tiny
run (session-wide, read-only)."""

import pytest
import tensorflow as tf

from export import exporter
from export import validation
from tests.helpers.exports import NO_FLOORS


@pytest.fixture(scope="session")
def published(tiny_run, tmp_path_factory):
  """A real, validated, warm export (with tau) of the tiny run: version 1."""
  base = str(tmp_path_factory.mktemp("published"))
  return exporter.export(tiny_run["model_dir"], base,
                                  data_dir=tiny_run["data_dir"], include_tau=True,
                                  policy=NO_FLOORS, warmup_records=20,
                                  log=lambda _: None)


@pytest.fixture(scope="session")
def loaded(published):
  return tf.saved_model.load(published)


@pytest.fixture
def valid_report(tiny_run, monkeypatch):
  """Skips the (slow) evaluation: the candidate's report is the run's own."""
  report = dict(tiny_run["valid"])
  monkeypatch.setattr(validation, "evaluate_candidate", lambda *_: dict(report))
  return report
