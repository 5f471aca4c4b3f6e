"""Tests of formats/tabular.py: the CSV layouts' header check."""

import pytest

from pipelines.data import formats


def test_wrong_header_is_named(tmp_path):
  path = tmp_path / "train.csv"
  path.write_text("search_id,categorical_1,click\n1,2,0\n")
  with pytest.raises(ValueError, match=r"train\.csv:1: unexpected header"):
    formats.get("aliexpress_csv").sources(str(path))
