"""Tests for pipelines/data/datadir.py: which data folder a run reads."""

import pytest

from adaftr_tf import experiments
from adaftr_tf import overrides
from pipelines.training import train_lib


def test_missing_converted_data_is_a_clear_error(tmp_path):
  config = overrides.apply(experiments.get_preset("tiny"),
                                      ["data.source=files"])
  with pytest.raises(FileNotFoundError, match="holds no converted data"):
    train_lib.train(config, str(tmp_path / "model"), str(tmp_path / "missing"),
                   verbose=0)
  with pytest.raises(ValueError, match="needs --data_dir"):
    train_lib.train(config, str(tmp_path / "model"), None, verbose=0)
