"""TFDS builder `aliexpress/{nl,es,fr,us,ru}`: the raw AliExpress files.

Download (needs a free Tianchi account): https://tianchi.aliyun.com/dataset/74690
("AliExpress Dataset"). Per country it holds `{cc}_user_train.csv`,
`{cc}_item_train.csv`, `{cc}_user_test.csv`, `{cc}_item_test.csv` (zipped;
unzip them). Put them in `manual_dir` itself or in any folder below it (e.g.
`manual_dir/AliExpress_US/`), then:

  builder = tfds.builder("aliexpress/us", data_dir=DATA_DIR)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=MANUAL_DIR))

Rows are parsed and joined exactly as `pipelines.convert --format=
aliexpress_raw` does (see `pipelines/data/formats/aliexpress_raw.py`): one example
per item row with its user's features; splits `train`, `validation` (the last
10% of the train files) and `test`. A bad row stops the build with its file
and line; unjoined item rows are left out and logged.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines.data.formats import aliexpress_raw
from pipelines.data.tfds import common

CATEGORICAL = tuple(f"categorical_{i}" for i in range(1, 17))
NUMERICAL = tuple(f"numerical_{i}" for i in range(1, 64))


@dataclasses.dataclass
class AliExpressConfig(tfds.core.BuilderConfig):
  """One country; `valid_fraction` of the train rows (from the end) validate."""

  country: str = "us"
  valid_fraction: float = common.VALID_FRACTION


class AliExpress(common.LocalCodePath, tfds.core.GeneratorBasedBuilder):
  """AliExpress search impressions with click and purchase labels."""

  name = "aliexpress"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Raw Tianchi files joined on the search id.",
                   "1.1.0": "The search id kept (`search_id`: the session "
                            "that GAUC groups by)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  BUILDER_CONFIGS = [
      AliExpressConfig(name=cc, country=cc,
                       description=f"AliExpress {cc.upper()} country subset")
      for cc in aliexpress_raw.COUNTRIES]
  CONVERTER_FIELDS = common.ConverterFields(CATEGORICAL, numerical=NUMERICAL,
                                            keys=(aliexpress_raw.KEY,))

  def _info(self) -> tfds.core.DatasetInfo:
    features = {name: tfds.features.Tensor(shape=(), dtype=tf.int64)
                for name in CATEGORICAL}
    features.update({name: tfds.features.Tensor(shape=(), dtype=tf.float32)
                     for name in NUMERICAL})
    features[aliexpress_raw.KEY] = tfds.features.Tensor(shape=(),
                                                        dtype=tf.int64)
    features.update(click=tfds.features.Tensor(shape=(), dtype=tf.int64),
                    conversion=tfds.features.Tensor(shape=(), dtype=tf.int64))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage="https://tianchi.aliyun.com/dataset/74690")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    cc = self.builder_config.country
    sources = aliexpress_raw.sources(common.find_file(
        dl_manager.manual_dir, f"{cc}_item_train.csv", __doc__))
    plan, boundary = common.split_plan(sources,
                                       self.builder_config.valid_fraction)
    return {name: self._generate_examples(split, source, boundary)
            for name, (split, source) in plan.items()}

  def _generate_examples(self, split, source, boundary):
    yield from common.examples(split, source, boundary, CATEGORICAL, (),
                               NUMERICAL, self.CONVERTER_FIELDS.keys)
