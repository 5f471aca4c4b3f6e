"""Per-field embeddings of categorical ids and numerical values."""

import numpy as np
import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf.layers.factored import FactoredFields
from adaftr_tf.layers.mlp import derive_seed
from adaftr_tf.layers.mlp import validate_non_negative
from adaftr_tf.layers.mlp import validate_positive_int
from adaftr_tf.layers.mlp import validate_seed
from adaftr_tf.layers.mlp import validate_units



@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class FieldEmbedding(tf_keras.layers.Layer):
  """Embeds every input field into one `embedding_dim` vector.

  Categorical field f with id r reads row `offset[f] + r` of ONE concatenated
  table of `sum(categorical_sizes)` rows, so the whole batch is a single
  gather (one sparse gradient, one kernel launch) rather than one per field.
  Numerical field f with value x becomes `x * W[f] + b[f]`.

  Multivalent fields (a list of ids per row) arrive as a ragged
  `[batch, n_cat, None]` id tensor: all ids of the batch, every field, are
  still ONE gather; the rows of each (example, field) list are then pooled
  with `combiner` (`mean`: sum / n, `sum`, `sqrtn`: sum / sqrt(n)) into that
  field's slot. Dense `[batch, n_cat]` ids take the plain single-gather path.

  Regularisation (when `l2 > 0`) is `l2 * sum(rows_gathered ** 2) / batch`,
  added with `add_loss`: penalising the whole table every step would shrink
  rows of ids absent from the batch and cost O(table) per step.

  Call:
    categorical: [batch, n_cat] int32/int64 ids, field f in
      [0, categorical_sizes[f]) (out-of-vocabulary already mapped by the
      caller), or a `tf.RaggedTensor` [batch, n_cat, None] of such ids with
      at least one id per list. May be None when n_cat == 0.
    numerical: [batch, n_num] float. May be None when n_num == 0.

  Returns:
    [batch, n_cat + n_num, embedding_dim]; categorical fields first, in order.
  """

  def __init__(self, categorical_sizes, num_numerical, embedding_dim, l2=0.0,
               seed=0, combiner="mean", **kwargs):
    """Creates the embedding layer.

    Args:
      categorical_sizes: tuple of vocabulary sizes (>= 1), one per categorical
        field; may be empty.
      num_numerical: number of numerical fields, >= 0.
      embedding_dim: width of every field embedding, >= 1.
      l2: weight of the batch-row L2 penalty, >= 0.
      seed: int seed of the table and numerical weights.
      combiner: pooling of a ragged field's rows; one of `choices.Combiner`.
      **kwargs: standard Layer arguments.

    Raises:
      ValueError: naming the argument that is out of range, or if there are
        no fields at all.
    """
    # The table stays float32 under mixed precision; only gathered rows are
    # cast, never the whole table (as Keras' own Embedding does).
    kwargs["autocast"] = False
    super().__init__(**kwargs)
    self.categorical_sizes = validate_units(
        "categorical_sizes", categorical_sizes, allow_empty=True)
    self.num_numerical = validate_positive_int("num_numerical", num_numerical,
                                               minimum=0)
    if not self.categorical_sizes and not self.num_numerical:
      raise ValueError("FieldEmbedding needs at least one field: "
                       "categorical_sizes is empty and num_numerical is 0")
    self.embedding_dim = validate_positive_int("embedding_dim", embedding_dim)
    self.l2 = validate_non_negative("l2", l2)
    self.seed = validate_seed(seed)
    self.combiner = choices.check("combiner", combiner, choices.Combiner)
    self._offsets = np.concatenate(
        [[0], np.cumsum(self.categorical_sizes[:-1], dtype=np.int64)]
    ).astype(np.int64) if self.categorical_sizes else np.zeros([0], np.int64)

  @property
  def num_fields(self):
    """n_cat + n_num."""
    return len(self.categorical_sizes) + self.num_numerical

  @property
  def output_dim(self):
    """Width of the flattened output, (n_cat + n_num) * embedding_dim."""
    return self.num_fields * self.embedding_dim

  def build(self, input_shape=None):
    init = lambda s: tf_keras.initializers.RandomUniform(-0.05, 0.05, seed=s)
    if self.categorical_sizes:
      self.table = self.add_weight(
          "table", shape=[sum(self.categorical_sizes), self.embedding_dim],
          initializer=init(derive_seed(self.seed, "table")), dtype=self.dtype)
    if self.num_numerical:
      self.numerical_kernel = self.add_weight(
          "numerical_kernel", shape=[self.num_numerical, self.embedding_dim],
          initializer=init(derive_seed(self.seed, "numerical")),
          dtype=self.dtype)
      self.numerical_bias = self.add_weight(
          "numerical_bias", shape=[self.num_numerical, self.embedding_dim],
          initializer="zeros", dtype=self.dtype)
    super().build(input_shape)

  @tf.autograph.experimental.do_not_convert
  def _pooled(self, ids: tf.RaggedTensor):
    """Ragged [batch, n_cat, None] ids -> (pooled [batch, n_cat, dim], rows)."""
    n_cat = len(self.categorical_sizes)
    lists = ids.values  # [batch * n_cat, None], example-major
    segments = lists.value_rowids()  # [nnz] = example * n_cat + field
    flat = tf.cast(lists.values, tf.int64) + tf.gather(
        tf.constant(self._offsets), segments % n_cat)
    rows = tf.gather(self.table, flat)  # [nnz, dim], the one gather
    num_lists = lists.nrows()
    pooled = tf.math.unsorted_segment_sum(rows, segments, num_lists)
    if self.combiner != "sum":
      count = tf.cast(tf.maximum(lists.row_lengths(), 1), rows.dtype)[:, None]
      pooled /= count if self.combiner == "mean" else tf.sqrt(count)
    return tf.reshape(pooled, [-1, n_cat, self.embedding_dim]), rows

  def _categorical(self, categorical, penalise=True):
    """Embedded categorical fields `[batch, n_cat, dim]` in the compute dtype
    (with `penalise`, adds the L2 penalty of the gathered rows)."""
    if isinstance(categorical, tf.RaggedTensor):
      if not categorical.dtype.is_integer:
        raise ValueError("categorical ids must be int32/int64, got "
                         f"{categorical.dtype}")
      embedded, rows = self._pooled(categorical)
      batch = tf.cast(categorical.nrows(), rows.dtype)
    else:
      ids = tf.convert_to_tensor(categorical)
      if not ids.dtype.is_integer:
        raise ValueError("categorical ids must be int32/int64, got "
                         f"{ids.dtype}")
      ids = tf.cast(ids, tf.int64) + tf.constant(self._offsets)
      # embedding_lookup (= gather for one variable) also reads a table
      # sharded across parameter servers (ShardedVariable).
      rows = embedded = tf.nn.embedding_lookup(self.table, ids)
      batch = tf.cast(tf.shape(rows)[0], rows.dtype)
    if self.l2 > 0 and penalise:   # in float32 whatever the compute dtype, like the loss
      rows = tf.cast(rows, tf.float32)
      self.add_loss(self.l2 * tf.reduce_sum(tf.square(rows)) /
                    tf.maximum(tf.cast(batch, tf.float32), 1.0))
    return tf.cast(embedded, self.compute_dtype)

  def _numerical(self, numerical):
    """(values `[batch, n_num]`, kernel, bias `[n_num, dim]`), compute dtype."""
    if numerical is None:
      raise ValueError(f"numerical must be a [batch, {self.num_numerical}] "
                       "tensor because num_numerical > 0, got None")
    return (tf.cast(numerical, self.compute_dtype),
            tf.cast(self.numerical_kernel, self.compute_dtype),
            tf.cast(self.numerical_bias, self.compute_dtype))

  def call(self, categorical, numerical=None):
    parts = []
    if self.categorical_sizes:
      parts.append(self._categorical(categorical))
    if self.num_numerical:
      x, kernel, bias = self._numerical(numerical)
      parts.append(x[:, :, None] * kernel + bias)  # [batch, n_num, dim]
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)

  def factored(self, categorical, numerical) -> FactoredFields:
    """The flattened output `[batch, output_dim]` in factored form (see
    layers/factored.py), for a built layer with numerical fields."""
    if not self.built or not self.num_numerical:
      raise ValueError("factored() needs a built FieldEmbedding with "
                       "numerical fields")
    with tf.name_scope(self.name):
      embedded = None
      if self.categorical_sizes:
        embedded = tf.reshape(
            self._categorical(categorical, penalise=False),
            [-1, len(self.categorical_sizes) * self.embedding_dim])
      return FactoredFields(embedded, *self._numerical(numerical))

  def get_config(self):
    config = super().get_config()
    config.update(categorical_sizes=list(self.categorical_sizes),
                  num_numerical=self.num_numerical,
                  embedding_dim=self.embedding_dim, l2=self.l2, seed=self.seed,
                  combiner=self.combiner)
    return config
