"""Tests of adaftr_tf.preprocessing.FeatureEncoder, with its non-finite policy:
a NaN or Inf numerical value stops with an error naming the field, or becomes
the schema default and is counted (`non_finite_replaced` training metric)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.preprocessing import NON_FINITE_METRIC, FeatureEncoder
from pipelines.data import reader as data_reader
from pipelines.data import records
from pipelines.data import synthetic
from pipelines.data.formats import report as report_lib
from tests.helpers.data import tiny_config

VOCAB = (100, 200, 300, -7)


def _schema():
  return F.FeatureSchema(
      categorical=(
          F.CategoricalFeature("ident", 5),
          F.CategoricalFeature("vocab", 4, encoding="vocabulary",
                               vocabulary=VOCAB),
          F.CategoricalFeature("hashed", 6, encoding="hash")),
      numerical=(
          F.NumericalFeature("price", mean=2.0, std=4.0),
          F.NumericalFeature("age", mean=-1.0, std=0.5)))


def _inputs(ident, vocab, hashed, price, age):
  return {"ident": tf.constant(ident, tf.int64),
          "vocab": tf.constant(vocab, tf.int64),
          "hashed": tf.constant(hashed, tf.int64),
          "price": tf.constant(price, tf.float32),
          "age": tf.constant(age, tf.float32)}


def _batch():
  return _inputs(ident=[0, 4, 5, -1, 2, 1000],
                 vocab=[100, 300, -7, 999, -1, 200],
                 hashed=[0, 1, 123456789, -1, 7, 42],
                 price=[2.0, 6.0, -2.0, 0.0, 10.0, 3.0],
                 age=[-1.0, 0.0, -2.0, 1.5, 3.0, -0.5])


@pytest.fixture(scope="module")
def encoder():
  return FeatureEncoder(_schema().to_dict())


def test_output_shapes_and_dtypes(encoder):
  categorical, numerical = encoder(_batch())
  assert categorical.dtype == tf.int32
  assert numerical.dtype == tf.float32
  assert categorical.shape == (6, 3)
  assert numerical.shape == (6, 2)


def test_identity_encoding(encoder):
  categorical, _ = encoder(_batch())
  # In range -> itself; >= vocab_size, negative, missing default -1 -> OOV (5).
  assert categorical[:, 0].numpy().tolist() == [0, 4, 5, 5, 2, 5]


def test_vocabulary_encoding(encoder):
  categorical, _ = encoder(_batch())
  # Raw id -> its position in VOCAB; unknown ids and the default -1 -> OOV (4).
  assert categorical[:, 1].numpy().tolist() == [0, 2, 3, 4, 4, 1]


def test_hash_encoding(encoder):
  raw = np.arange(-1, 500)
  features = _inputs(ident=np.zeros_like(raw), vocab=np.zeros_like(raw),
                     hashed=raw, price=np.zeros(len(raw)),
                     age=np.zeros(len(raw)))
  rows = encoder(features)[0][:, 2].numpy()
  assert rows[0] == 6  # the missing-value default (-1) -> OOV
  assert ((rows[1:] >= 0) & (rows[1:] < 6)).all()
  # Every bucket gets used by 500 ids (not a constant mapping).
  assert set(rows[1:].tolist()) == set(range(6))
  # Deterministic: same ids, fresh encoder, same rows.
  again = FeatureEncoder(_schema().to_dict())(features)[0][:, 2].numpy()
  np.testing.assert_array_equal(rows, again)


def test_hash_encoding_custom_default_goes_to_oov():
  schema = F.FeatureSchema((F.CategoricalFeature("h", 3, "hash", default=99),),
                           ())
  rows = FeatureEncoder(schema.to_dict())(
      {"h": tf.constant([99, -1], tf.int64)})[0][:, 0].numpy()
  assert rows[0] == 3
  assert 0 <= rows[1] < 3


def test_numerical_normalisation(encoder):
  batch = _batch()
  _, numerical = encoder(batch)
  expected_price = (batch["price"].numpy() - 2.0) / 4.0
  expected_age = (batch["age"].numpy() + 1.0) / 0.5
  np.testing.assert_allclose(numerical[:, 0].numpy(), expected_price, rtol=1e-6)
  np.testing.assert_allclose(numerical[:, 1].numpy(), expected_age, rtol=1e-6)


def test_column_inputs_and_int32_ids_accepted(encoder):
  batch = {k: tf.reshape(v, [-1, 1]) for k, v in _batch().items()}
  batch["ident"] = tf.cast(batch["ident"], tf.int32)
  categorical, numerical = encoder(batch)
  expected_cat, expected_num = encoder(_batch())
  np.testing.assert_array_equal(categorical.numpy(), expected_cat.numpy())
  np.testing.assert_allclose(numerical.numpy(), expected_num.numpy())


def test_only_numerical_or_only_categorical():
  num = FeatureEncoder(F.FeatureSchema((), (F.NumericalFeature("x", 1.0, 2.0),)
                                       ).to_dict())
  categorical, numerical = num({"x": tf.constant([3.0, 5.0])})
  assert categorical.shape == (2, 0) and categorical.dtype == tf.int32
  np.testing.assert_allclose(numerical.numpy(), [[1.0], [2.0]])
  cat = FeatureEncoder(F.FeatureSchema((F.CategoricalFeature("c", 2),), ()
                                       ).to_dict())
  categorical, numerical = cat({"c": tf.constant([1, 9], tf.int64)})
  assert categorical.numpy().tolist() == [[1], [2]]
  assert numerical.shape == (2, 0) and numerical.dtype == tf.float32


def test_missing_feature_named(encoder):
  batch = _batch()
  del batch["vocab"]
  del batch["age"]
  with pytest.raises(ValueError, match=r"missing from the model input: "
                     r"\['vocab', 'age'\]"):
    encoder(batch)


def test_extra_features_ignored(encoder):
  batch = _batch()
  expected = encoder(batch)[0].numpy()
  batch["unused"] = tf.constant([1, 2, 3, 4, 5, 6])
  np.testing.assert_array_equal(encoder(batch)[0].numpy(), expected)


def test_get_config_round_trip(encoder):
  config = encoder.get_config()
  assert config["schema"] == _schema().to_dict()
  clone = FeatureEncoder.from_config(config)
  assert clone.schema == encoder.schema
  for a, b in zip(clone(_batch()), encoder(_batch())):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # Also through Keras's generic (de)serialisation, as model loading does.
  import tf_keras  # pylint: disable=g-import-not-at-top
  restored = tf_keras.layers.deserialize(tf_keras.layers.serialize(encoder))
  assert isinstance(restored, FeatureEncoder)
  assert restored.schema == encoder.schema


def test_inside_tf_function(encoder):
  spec = _schema().serving_spec()

  @tf.function(input_signature=[spec])
  def encode(features):
    return encoder(features)

  categorical, numerical = encode(_batch())
  eager_cat, eager_num = encoder(_batch())
  np.testing.assert_array_equal(categorical.numpy(), eager_cat.numpy())
  np.testing.assert_allclose(numerical.numpy(), eager_num.numpy())
  assert categorical.shape.as_list() == [6, 3]
  traced = encode.get_concrete_function().structured_outputs
  assert traced[0].shape.as_list() == [None, 3]
  assert traced[1].shape.as_list() == [None, 2]


class _Wrapper(tf.Module):

  def __init__(self, encoder):
    super().__init__()
    self.encoder = encoder

  @tf.function(input_signature=[_schema().serving_spec()])
  def __call__(self, features):
    categorical, numerical = self.encoder(features)
    return {"categorical": categorical, "numerical": numerical}


def test_saved_model_round_trip(tmp_path):
  encoder = FeatureEncoder(_schema().to_dict())
  module = _Wrapper(encoder)
  expected = module(_batch())
  path = str(tmp_path / "encoder")
  tf.saved_model.save(module, path)
  del module, encoder
  loaded = tf.saved_model.load(path)
  outputs = loaded(_batch())
  np.testing.assert_array_equal(outputs["categorical"].numpy(),
                                expected["categorical"].numpy())
  np.testing.assert_allclose(outputs["numerical"].numpy(),
                             expected["numerical"].numpy())
  # The vocabulary table travelled with the SavedModel.
  assert outputs["categorical"][:, 1].numpy().tolist() == [0, 2, 3, 4, 4, 1]


# ---------------------------------------------------------------- multivalent

def _multivalent_encoder():
  schema = F.FeatureSchema(
      (F.CategoricalFeature("ident", 5),
       F.CategoricalFeature("tags", 3, "vocabulary", (10, 20, 30),
                            multivalent=True),
       F.CategoricalFeature("hashed", 4, "hash", multivalent=True)),
      (F.NumericalFeature("price", mean=1.0, std=2.0),))
  return schema, FeatureEncoder(schema.to_dict())


def _multivalent_batch(tags):
  return {"ident": tf.constant([0, 7, 2], tf.int64), "tags": tags,
          "hashed": tf.ragged.constant([[1, 2], [], [5]], tf.int64),
          "price": tf.constant([1.0, 3.0, 5.0])}


def test_multivalent_rows_ragged_example_major_with_oov():
  _, encoder = _multivalent_encoder()
  tags = tf.ragged.constant([[10, 30, 99], [], [20]], tf.int64)
  categorical, numerical = encoder(_multivalent_batch(tags))
  assert isinstance(categorical, tf.RaggedTensor)
  assert categorical.dtype == tf.int32
  rows = categorical.to_list()
  assert [r[0] for r in rows] == [[0], [5], [2]]  # single-valued: one row
  assert [r[1] for r in rows] == [[0, 2, 3], [3], [1]]  # 99 and empty -> OOV
  assert rows[1][2] == [4]  # an empty hashed list -> OOV
  assert all(0 <= v < 4 for v in rows[0][2] + rows[2][2])
  np.testing.assert_allclose(numerical.numpy(), [[0.0], [1.0], [2.0]])


def test_multivalent_dense_sparse_and_1d_inputs_agree():
  _, encoder = _multivalent_encoder()
  ragged = tf.ragged.constant([[10, 30], [], [20]], tf.int64)
  expected = encoder(_multivalent_batch(ragged))[0].to_list()
  dense = tf.constant([[10, 30], [-1, -1], [20, -1]], tf.int64)  # -1 pads
  assert encoder(_multivalent_batch(dense))[0].to_list() == expected
  sparse = ragged.to_sparse()
  assert encoder(_multivalent_batch(sparse))[0].to_list() == expected
  one = encoder(_multivalent_batch(tf.constant([10, -1, 20], tf.int64)))
  assert [r[1] for r in one[0].to_list()] == [[0], [3], [1]]


class _RaggedWrapper(tf.Module):
  """Serves the encoder's ragged output as flat tensors."""

  def __init__(self, encoder, schema):
    super().__init__()
    self.encoder = encoder
    self.serve = tf.function(self._serve,
                             input_signature=[schema.serving_spec()])

  def _serve(self, features):
    categorical, numerical = self.encoder(features)
    return {"values": categorical.flat_values,
            "lengths": categorical.values.row_lengths(),
            "numerical": numerical}


def test_multivalent_serving_signature_saved_model(tmp_path):
  schema, encoder = _multivalent_encoder()
  module = _RaggedWrapper(encoder, schema)
  batch = _multivalent_batch(tf.constant([[10, 30], [-1, -1], [20, -1]],
                                         tf.int64))
  batch["hashed"] = tf.constant([[1, 2], [-1, -1], [5, -1]], tf.int64)
  expected = module.serve(batch)
  path = str(tmp_path / "m")
  tf.saved_model.save(module, path)
  outputs = tf.saved_model.load(path).serve(batch)
  for key in expected:
    np.testing.assert_array_equal(outputs[key].numpy(), expected[key].numpy())


# ------------------------------------------------------- non-finite values


NAN_ROWS = (3, 70, 1000)  # train rows whose numerical_2 is NaN / +Inf / -Inf


def _tiny(*items):
  return tiny_config("train.steps_per_epoch=8", "train.steps_per_execution=2",
                     "train.checkpoint_every_steps=2", *items)


@pytest.fixture(scope="module")
def nan_data(tmp_path_factory):
  """Converted-looking data: the tiny synthetic log with 3 non-finite values."""
  config = experiments.get_preset("tiny").data.synthetic
  directory = str(tmp_path_factory.mktemp("nan_data"))
  rows = {}
  for split in ("train", "valid"):
    columns = synthetic.generate_split(config, split)
    if split == "train":
      for row, value in zip(NAN_ROWS, (np.nan, np.inf, -np.inf)):
        columns["numerical_2"][row] = value
    records.write_sharded(columns, directory, split, num_shards=2)
    rows[split] = {"rows": len(columns[F.CLICK])}
  synthetic.synthetic_schema(config).save(directory)
  with open(os.path.join(directory, report_lib.REPORT_FILE), "w") as f:
    json.dump({"splits": rows}, f)
  return directory


def _encoder(policy):
  schema = F.FeatureSchema((F.CategoricalFeature("c", 5),),
                           (F.NumericalFeature("x", mean=1.0, std=2.0,
                                               default=3.0),
                            F.NumericalFeature("y")))
  return FeatureEncoder(schema.to_dict(), non_finite=policy)


def _features(x):
  return {"c": tf.constant([1, 2, 3], tf.int64),
          "x": tf.constant(x, tf.float32),
          "y": tf.constant([0.0, 1.0, 2.0], tf.float32)}


@pytest.mark.reliability
def test_error_policy_names_the_field_and_the_row():
  encoder = _encoder("error")
  _, numerical = encoder(_features([1.0, 2.0, 5.0]))  # finite: unchanged
  np.testing.assert_allclose(numerical[:, 0], [0.0, 0.5, 2.0])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"numerical feature x holds a non-finite value"
                           r" \(NaN or Inf\) at batch row\W*1\W[\s\S]*inf"):
    encoder(_features([1.0, np.inf, np.nan]))
  graph = tf.function(lambda f: encoder(f)[1])
  with pytest.raises(tf.errors.InvalidArgumentError, match="feature x holds"):
    graph(_features([np.nan, 1.0, 1.0]))


@pytest.mark.reliability
def test_replace_policy_uses_the_schema_default_and_counts():
  encoder = _encoder("replace")
  _, numerical = encoder(_features([np.nan, 5.0, -np.inf]))
  # default 3.0 -> (3 - 1) / 2 = 1.0
  np.testing.assert_allclose(numerical[:, 0], [1.0, 2.0, 1.0])
  assert encoder.replaced.result().numpy() == 2
  encoder(_features([np.inf, 1.0, 1.0]), training=False)  # serving: no count
  assert encoder.replaced.result().numpy() == 2
  restored = FeatureEncoder.from_config(encoder.get_config())
  assert restored.non_finite == "replace"
  with pytest.raises(ValueError, match="non_finite='drop' is not valid"):
    _encoder("drop")


def _model_and_batches(nan_data, *items):
  config = _tiny("model.name=multitask", *items)  # quicker to trace
  schema = F.FeatureSchema.load(nan_data)
  model = models.compile_model(models.build_model(config, schema), config)
  batches = data_reader.make_dataset(nan_data, "train", schema, 512,
                                   training=False)  # every row once: 8 steps
  return model, batches


@pytest.mark.reliability
@pytest.mark.slow  # a model trained on 8 steps
def test_training_batches_with_nan_features_fail_naming_the_field(nan_data):
  model, batches = _model_and_batches(nan_data)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="numerical feature numerical_2 holds a non-finite "
                           r"value \(NaN or Inf\) at batch row\W*\d+\W"):
    model.fit(batches, steps_per_epoch=8, verbose=0)


@pytest.mark.reliability
@pytest.mark.slow  # a model trained and evaluated on 8 steps
def test_training_with_replace_counts_the_replacements(nan_data):
  model, batches = _model_and_batches(nan_data,
                                      "data.non_finite_policy=replace")
  history = model.fit(batches, steps_per_epoch=8, validation_data=batches,
                      validation_steps=8, verbose=0).history
  assert history[NON_FINITE_METRIC] == [len(NAN_ROWS)]  # once per epoch
  assert history["val_" + NON_FINITE_METRIC] == [len(NAN_ROWS)]
  assert np.isfinite(history["loss"]).all()
  assert np.isfinite(history["val_loss"]).all()


# ------------------------------------------------------------------------ XLA

def test_xla_compiles_identity_and_vocabulary_lookups_with_the_same_rows():
  schema = F.FeatureSchema(
      (F.CategoricalFeature("ident", 5),
       F.CategoricalFeature("vocab", 4, encoding="vocabulary",
                            vocabulary=VOCAB),
       F.CategoricalFeature("tags", 3, "vocabulary", (30, 10, 20),
                            multivalent=True)),
      (F.NumericalFeature("price", mean=2.0, std=4.0),))
  encoder = FeatureEncoder(schema.to_dict())
  batch = {"ident": tf.constant([0, 7, 4], tf.int64),
           "vocab": tf.constant([300, -7, 5], tf.int64),
           "tags": tf.ragged.constant([[10, 30, 99], [], [20]], tf.int64),
           "price": tf.constant([1.0, 3.0, 5.0])}

  def encode(b):
    categorical, numerical = encoder(b)
    return categorical.flat_values, categorical.row_splits, numerical

  eager = encode(batch)
  compiled_encode = tf.function(encode, jit_compile=True)
  compiled = compiled_encode(batch)
  for x, y in zip(eager, compiled):
    np.testing.assert_allclose(x.numpy(), y.numpy())
  # Rows: ident 7 -> OOV 5; vocab 300 -> 2, -7 -> 3, 5 -> OOV 4; tags in
  # vocabulary order (30, 10, 20): 10 -> 1, 30 -> 0, 99 -> OOV 3, [] -> OOV.
  assert eager[0].numpy().tolist() == [0, 2, 1, 0, 3, 5, 3, 3, 4, 4, 2]
  # XLA drops the non-finite assertion (the documented difference): the NaN
  # passes through, where the eager call fails naming the field.
  batch["price"] = tf.constant([1.0, float("nan"), 5.0])
  assert np.isnan(compiled_encode(batch)[2].numpy()[1, 0])
  with pytest.raises(tf.errors.InvalidArgumentError, match="price"):
    encoder(batch)
