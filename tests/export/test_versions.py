"""Tests of export/versions.py: numbered versions and pruning."""

import os

import pytest

from export import versions


def test_prune_removes_oldest_and_never_the_new_version(tmp_path):
  base = str(tmp_path)
  for version in (1, 2, 3, 4, 5):
    os.makedirs(os.path.join(base, str(version), "variables"))
  assert versions.prune(base, keep=2, protect=5) == [1, 2, 3]
  assert versions.versions(base) == [4, 5]
  # A newer version written meanwhile: the protected one stays anyway.
  assert versions.prune(base, keep=1, protect=4) == []
  assert versions.versions(base) == [4, 5]
  assert sorted(os.listdir(base)) == ["4", "5"]
  with pytest.raises(ValueError, match="keep must be >= 1"):
    versions.prune(base, keep=0, protect=5)
