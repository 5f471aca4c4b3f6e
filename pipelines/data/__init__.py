"""The data path: raw files -> TFRecord shards -> tf.data batches."""
