"""Ali-CCP, preprocessed CSV (the torch-rechub layout).

Header `click,purchase,101,121,...,150_14,D109_14,...,D853`: the two labels,
one integer id column per sparse field (multi-valued fields already collapsed
to one id upstream) and `D`-prefixed float columns (the token values).
`purchase` is click-and-purchase (the conversion label). `--input`: one CSV
(the train split) or a folder with `*train*.csv`, optionally `*val*.csv`
(appended to the end of train, where the validation split is carved from)
and `*test*.csv`.
"""

from __future__ import annotations

from pipelines.data.formats import base
from pipelines.data.formats import table
from pipelines.data.formats import tabular

NAME = "aliccp_csv"
PATTERNS = {"train": ("*train*.csv",), "val": ("*val*.csv",),
            "test": ("*test*.csv",)}
LABELS = (0, 1)


def _from_header(header: list[str], path: str) -> tuple[table.Column, ...]:
  header = [h.strip() for h in header]
  if header[:2] != ["click", "purchase"] or len(header) < 3:
    raise tabular.header_error(path, header,
                               "click,purchase, then id and D* columns")
  columns = [table.Column("click", table.LABEL, LABELS),
             table.Column("conversion", table.LABEL, LABELS)]
  for name in header[2:]:
    dense = name.startswith("D")
    columns.append(table.Column(base.feature_name(name),
                                table.VALUE if dense else table.ID))
  names = [c.name for c in columns]
  if len(set(names)) != len(names):
    raise tabular.header_error(path, header, "unique column names")
  return tuple(columns)


def sources(input_path: str) -> dict[str, base.Source]:
  """split -> source; a val file becomes the end of the train split."""
  files = base.find_files(input_path, PATTERNS, NAME)
  files["train"] = files["train"] + files.pop("val", [])
  return {split: tabular.TableSource(paths, None, header=True,
                                     from_header=_from_header)
          for split, paths in files.items()}
