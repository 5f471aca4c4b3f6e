"""Converter helpers: quiet conversions, parsed blocks, TFDS preparation and
record comparison."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from adaftr_tf import features as F
from pipelines.data import formats
from pipelines.data import layout
from pipelines.data import records
from pipelines.data.formats import base
from pipelines.data.formats import conversion


def convert(layout, path, out, **options):
  """`conversion.convert` without progress or log lines; returns the report."""
  return conversion.convert(layout, str(path), str(out), conversion.Options(
      progress=False, **options), log=lambda _: None)


def prepare_tfds(name, manual_dir, data_dir):
  """Prepares the TFDS builder `name` offline from `manual_dir`."""
  builder = tfds.builder(name, data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  return builder


def sorted_records(data_dir, split):
  """Sorted records of a split, each as sorted (key, values) pairs."""
  rows = []
  for record in layout.split_examples(data_dir, split):
    example = tf.train.Example.FromString(record)
    rows.append(tuple(sorted(
        (k, tuple(v.int64_list.value) or tuple(v.float_list.value))
        for k, v in example.features.feature.items())))
  return sorted(rows)


def assert_same_conversion(tfds_out, raw_out, tfds_report, raw_report):
  """Same schema (vocabularies, normalisation) and records in every split."""
  with open(os.path.join(tfds_out, F.SCHEMA_FILE)) as f:
    got = json.load(f)
  with open(os.path.join(raw_out, F.SCHEMA_FILE)) as f:
    want = json.load(f)
  assert got["categorical"] == want["categorical"]
  # TFDS stores float32 (as the records do): the moments move in the 8th digit.
  assert [f["name"] for f in got["numerical"]] == [
      f["name"] for f in want["numerical"]]
  for g, w in zip(got["numerical"], want["numerical"]):
    assert g["mean"] == pytest.approx(w["mean"], rel=1e-6, abs=1e-9)
    assert g["std"] == pytest.approx(w["std"], rel=1e-6)
  for split in F.SPLITS:
    assert tfds_report["splits"][split]["rows"] == \
        raw_report["splits"][split]["rows"] > 0
    assert sorted_records(tfds_out, split) == sorted_records(raw_out,
                                                             split), split


def read_blocks(layout, path, split="train"):
  """(source, every parsed block) of `split` of a layout's input."""
  source = formats.get(layout).sources(path)[split]
  blocks = list(source.blocks(base.BadRows(skip=False), None))
  return source, blocks


def concat_column(blocks, name, kind):
  """Column `name` of the blocks' `kind` ("ids", "values", "keys") end to end."""
  return np.concatenate([getattr(b, kind)[name] for b in blocks])
