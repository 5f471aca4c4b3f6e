"""TFDS builder `ali_ccp/raw`: the raw Ali-CCP files (the ESMM dataset).

Download (needs a free Tianchi account): https://tianchi.aliyun.com/dataset/408
("Alibaba Click and Conversion Prediction"): `sample_train.tar.gz` and
`sample_test.tar.gz`; extract them so that `manual_dir` (or a folder below it)
holds `sample_skeleton_train.csv`, `common_features_train.csv`,
`sample_skeleton_test.csv` and `common_features_test.csv`. Then:

  builder = tfds.builder("ali_ccp/raw", data_dir=DATA_DIR)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=MANUAL_DIR))

Rows are parsed and joined as `pipelines.convert --format=aliccp_raw` does
(see `pipelines/data/formats/aliccp_raw.py`). Features `f<field>` for the 23
documented fields: an int64 id (-1 when absent) or, for the multi-valued
behaviour fields (109_14, 110_14, 127_14, 150_14, 210, 853), a variable-length
int64 sequence keeping every id. Splits `train`, `validation` (the last 10% of
the train files) and `test`. Conversions without a click and unjoined rows
are left out and logged; a bad row stops the build with its file and line;
tokens of undocumented fields are not kept.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines.data.formats import aliccp_raw
from pipelines.data.formats import base
from pipelines.data.formats import tokens
from pipelines.data.tfds import common

FIELDS = tuple(base.feature_name(f) for f in tokens.ALICCP_FIELDS)
LISTS = tuple(f for f in FIELDS if f in tokens.ALICCP_MULTIVALENT_FEATURES)
SINGLE = tuple(f for f in FIELDS if f not in LISTS)


@dataclasses.dataclass
class AliCcpConfig(tfds.core.BuilderConfig):
  valid_fraction: float = common.VALID_FRACTION


class AliCcp(common.LocalCodePath, tfds.core.GeneratorBasedBuilder):
  """Ali-CCP impressions (Taobao) with click and purchase labels."""

  name = "ali_ccp"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Raw skeleton + common features, joined."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  BUILDER_CONFIGS = [AliCcpConfig(name="raw", description="raw Tianchi files")]
  CONVERTER_FIELDS = common.ConverterFields(FIELDS, LISTS,
                                            missing_id=common.MISSING_ID)

  def _info(self) -> tfds.core.DatasetInfo:
    features = {name: tfds.features.Tensor(shape=(), dtype=tf.int64)
                for name in SINGLE}
    features.update({name: tfds.features.Sequence(tf.int64) for name in LISTS})
    features.update(click=tfds.features.Tensor(shape=(), dtype=tf.int64),
                    conversion=tfds.features.Tensor(shape=(), dtype=tf.int64))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage="https://tianchi.aliyun.com/dataset/408")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    sources = aliccp_raw.sources(common.find_file(
        dl_manager.manual_dir, "sample_skeleton_train.csv", __doc__))
    plan, boundary = common.split_plan(sources,
                                       self.builder_config.valid_fraction)
    return {name: self._generate_examples(split, source, boundary)
            for name, (split, source) in plan.items()}

  def _generate_examples(self, split, source, boundary):
    yield from common.examples(split, source, boundary, SINGLE, LISTS, ())
