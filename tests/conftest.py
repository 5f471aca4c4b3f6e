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

# Real public sample rows live in ../shared/data beside the checkout.
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


@pytest.fixture
def shared_data_dir():
  if not os.path.isdir(SHARED_DATA):
    pytest.skip(f"shared sample data not found at {SHARED_DATA}")
  return SHARED_DATA
