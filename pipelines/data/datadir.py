"""What a data directory holds: schema, shards, row counts, oracle columns.

A data directory is converter output (`pipelines.convert`: shards,
`schema.json`, `data_report.json`) or the synthetic log (the same plus
`synthetic.json`, generated here when missing). Training reads nothing else.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import Config
from pipelines.data import layout as layout_lib
from pipelines.data import synthetic
from pipelines.data.formats.report import REPORT_FILE

WAIT_FOR_CHIEF_S = 900  # how long a non-chief worker waits for the chief's data


def default_data_dir(config: Config) -> str:
  """`data/synthetic-<hash>` under the working dir: a hash of the synthetic
  config and, for row blocks, of the layout (per-row data keeps the folder
  name it had before the layouts, so it is never taken for blocks)."""
  digest = layout_lib.folder_digest(config.to_dict()["data"]["synthetic"],
                                    layout_lib.from_config(config.data))
  return os.path.join("data", "synthetic-" + digest)


def has_oracle(data_dir: str) -> bool:
  """Whether the rows carry the oracle columns (synthetic data only)."""
  return tf.io.gfile.exists(os.path.join(data_dir, synthetic.SYNTHETIC_FILE))


def resolve(config: Config, data_dir: str | None,
            log: Callable[[str], None] = print,
            wait_for_chief: bool = False) -> tuple[F.FeatureSchema, str]:
  """Returns (schema, data_dir), generating synthetic data when missing.

  A data_dir that holds converted data (schema.json without synthetic.json)
  decides the features whatever the config. With `wait_for_chief` (a
  non-chief worker) missing synthetic data is waited for, not generated.

  Raises:
    ValueError / FileNotFoundError: `data.source=files` without converted
      data.
    TimeoutError: the chief did not write the data in time.
  """
  if data_dir is None:
    if config.data.source == "files":
      raise ValueError("data.source=files needs --data_dir pointing at "
                       "converted data (a folder with schema.json)")
    data_dir = default_data_dir(config)
  schema_path = os.path.join(data_dir, F.SCHEMA_FILE)
  if wait_for_chief and config.data.source == "synthetic":
    deadline = time.time() + WAIT_FOR_CHIEF_S
    while not tf.io.gfile.exists(schema_path):
      if time.time() > deadline:
        raise TimeoutError(f"waited {WAIT_FOR_CHIEF_S}s for the chief to "
                           f"write the synthetic data into {data_dir}")
      time.sleep(1.0)
  if tf.io.gfile.exists(schema_path) and not has_oracle(data_dir):
    return F.FeatureSchema.load(data_dir), data_dir
  if config.data.source == "files":
    raise FileNotFoundError(f"--data_dir {data_dir} holds no converted data "
                            f"({F.SCHEMA_FILE} missing)")
  return synthetic.ensure_synthetic_dataset(
      config.data.synthetic, data_dir, log=log,
      layout=layout_lib.from_config(config.data)), data_dir


def split_rows(data_dir: str, split: str,
               log: Callable[[str], None] = print) -> int:
  """Rows in a split, from the data's metadata (counted when it has none)."""
  for name in (synthetic.SYNTHETIC_FILE, REPORT_FILE):
    path = os.path.join(data_dir, name)
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        rows = json.load(f).get("splits", {}).get(split, {}).get("rows")
      if rows is not None:
        return int(rows)
  log(f"counting the {split} records of {data_dir} (no row count stored)")
  return layout_lib.count_rows(data_dir, split)
