"""Tests of formats/vocabulary.py: min_count and hash buckets."""

from adaftr_tf import features as F
from tests.helpers.conversion import convert
from tests.helpers.samples import write_aliccp_raw


def test_min_count_and_hash_buckets(tmp_path):
  folder = write_aliccp_raw(tmp_path / "raw", splits=("train",))
  report = convert("aliccp_raw", folder, tmp_path / "mc", min_count=3)
  schema = F.FeatureSchema.load(str(tmp_path / "mc"))
  f205 = {f.name: f for f in schema.categorical}["f205"]
  assert f205.encoding == "vocabulary" and f205.vocab_size < 8
  assert report["fields"]["f205"]["train_cardinality"] == 8
  assert report["fields"]["f205"]["oov_rate"]["train"] > 0
  convert("aliccp_raw", folder, tmp_path / "hash", hash_buckets=16)
  schema = F.FeatureSchema.load(str(tmp_path / "hash"))
  assert {(f.encoding, f.vocab_size) for f in schema.categorical} == {
      ("hash", 16)}
