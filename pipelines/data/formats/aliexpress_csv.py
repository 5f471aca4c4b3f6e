"""AliExpress, preprocessed CSV (the MTReclib / torch-rechub layout).

Header `search_id,categorical_1..categorical_16,numerical_1..numerical_63,
click,conversion`, comma-separated, one impression per line; `conversion`
is click-and-purchase. `search_id` (the search session) is kept as a row key
beside the features: it groups rows for GAUC and is never a model input
(MTReclib's loader drops it). `--input`: one CSV file (the train split), or a folder holding
`train.csv` and optionally `test.csv` (e.g. `AliExpress_NL/` as MTReclib's
`data/preprocess.py` writes it).
"""

from __future__ import annotations

from pipelines.data.formats import base
from pipelines.data.formats import table
from pipelines.data.formats import tabular

NAME = "aliexpress_csv"
NUM_CATEGORICAL, NUM_NUMERICAL = 16, 63
PATTERNS = {"train": ("train.csv", "*train*.csv"),
            "test": ("test.csv", "*test*.csv")}
LABELS = (0, 1)


def expected_columns() -> tuple[table.Column, ...]:
  return ((table.Column("search_id", table.KEY),)
          + tuple(table.Column(f"categorical_{i}", table.ID)
                  for i in range(1, NUM_CATEGORICAL + 1))
          + tuple(table.Column(f"numerical_{i}", table.VALUE)
                  for i in range(1, NUM_NUMERICAL + 1))
          + (table.Column("click", table.LABEL, LABELS),
             table.Column("conversion", table.LABEL, LABELS)))


def _from_header(header: list[str], path: str) -> tuple[table.Column, ...]:
  columns = expected_columns()
  if [h.strip() for h in header] != [c.name for c in columns]:
    raise tabular.header_error(
        path, header, "search_id,categorical_1..categorical_16,"
        "numerical_1..numerical_63,click,conversion")
  return columns


def sources(input_path: str) -> dict[str, base.Source]:
  """split -> source of the AliExpress preprocessed CSV files."""
  files = base.find_files(input_path, PATTERNS, NAME)
  return {split: tabular.TableSource(paths, None, header=True,
                                     from_header=_from_header)
          for split, paths in files.items()}
