"""TensorFlow Datasets builders over the files a user downloaded (`manual_dir`).

Importing this package registers `aliexpress/{nl,es,fr,us,ru}` and
`ali_ccp/raw`; then, offline:

  import tensorflow_datasets as tfds
  import pipelines.data.tfds  # noqa: F401  (registers the builders)
  builder = tfds.builder("aliexpress/us", data_dir=DATA_DIR)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=MANUAL_DIR))
  ds = builder.as_dataset(split="train")

The builders read the files with the same parsers as `pipelines.convert`,
which also converts a prepared dataset into training data:

  python -m pipelines.convert --format=tfds --input=aliexpress/us \
      --tfds_data_dir=DATA_DIR --output_dir=OUT
"""

from pipelines.data.tfds.aliccp import AliCcp
from pipelines.data.tfds.aliexpress import AliExpress

BUILDERS = (AliExpress, AliCcp)  # what --format=tfds reads

__all__ = ["AliCcp", "AliExpress", "BUILDERS"]
