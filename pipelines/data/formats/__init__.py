"""Readers of the public multi-task datasets, one module per input layout.

Each layout module exposes `NAME` and `sources(input_path) -> {split: Source}`
(`base.Source`: a stream of parsed `base.Block`s), and may declare how its
rows are split (`SPLITTER`, a `splitting.Splitter` class; default
`splitting.FileOrder`). `conversion.convert` turns any of them into sharded
TFRecord + schema.json + data_report.json. The files of a layout are local; `tfds_dataset` reads a prepared TFDS dataset
instead (`sources(name, data_dir)`).
"""

from pipelines.data.formats import aliccp_csv
from pipelines.data.formats import aliccp_raw
from pipelines.data.formats import aliccp_text
from pipelines.data.formats import aliexpress_csv
from pipelines.data.formats import aliexpress_raw
from pipelines.data.formats import census
from pipelines.data.formats import tfds_dataset

LAYOUTS = {m.NAME: m for m in (aliexpress_csv, aliexpress_raw, aliccp_raw,
                               aliccp_csv, aliccp_text, census, tfds_dataset)}


def get(name: str):
  """The layout module called `name`; ValueError lists the valid names."""
  if name not in LAYOUTS:
    raise ValueError(f"unknown --format {name!r}; valid formats: "
                     f"{', '.join(LAYOUTS)}")
  return LAYOUTS[name]
