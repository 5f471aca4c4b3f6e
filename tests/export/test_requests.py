"""Tests of export/requests.py: warm-up requests (validation examples without
labels, bounded size)."""

import numpy as np
import pytest
import tensorflow as tf

from export import requests
from export import serving
from export import versions
from pipelines.data import layout
from tests.helpers.exports import example


def test_warmup_holds_validation_examples_without_labels(tiny_run, published):
  logs = requests.read_warmup(versions.extra_path(published, versions.WARMUP_FILE))
  first = layout.split_examples(tiny_run["data_dir"], "valid", 20)
  expected = requests.parse_features(first, tiny_run["schema"])
  single = [requests.request_inputs(log.predict_log.request) for log in logs[:20]]
  assert all(s == serving.SIGNATURE_EXAMPLES for s, _ in single)
  got = requests.parse_features([i["examples"][0] for _, i in single],
                                tiny_run["schema"])
  for name, values in expected.items():
    np.testing.assert_array_equal(got[name], values)
  example = tf.train.Example.FromString(single[0][1]["examples"][0])
  assert set(example.features.feature) == set(tiny_run["schema"].feature_names)


def test_warmup_size_is_bounded_and_labels_are_dropped(tiny_run):
  schema = tiny_run["schema"]
  with pytest.raises(ValueError, match="at most 1000"):
    requests.warmup_logs([b""] * 999, schema)
  with pytest.raises(ValueError, match="at least one example"):
    requests.warmup_logs([], schema)
  labelled = example(click=1, conversion=0, **{schema.categorical[0].name: 3})
  (clean,) = requests.feature_examples([labelled], schema)
  assert set(tf.train.Example.FromString(clean).features.feature) == {
      schema.categorical[0].name}
