"""Tests of adaftr_tf.features: schema validation, specs, (de)serialisation."""

import json
import os

import pytest
import tensorflow as tf

from adaftr_tf import features as F


def _schema():
  return F.FeatureSchema(
      categorical=(
          F.CategoricalFeature("user", 10),
          F.CategoricalFeature("item", 3, encoding="vocabulary",
                               vocabulary=(100, 200, 300)),
          F.CategoricalFeature("shop", 7, encoding="hash", default=-5)),
      numerical=(
          F.NumericalFeature("price", mean=2.0, std=4.0, default=1.5),
          F.NumericalFeature("age")))


# ---------------------------------------------------------------- validation

def test_valid_schema_properties():
  schema = _schema()
  assert schema.feature_names == ("user", "item", "shop", "price", "age")
  assert schema.categorical_sizes == (11, 4, 8)
  assert schema.categorical[0].oov_index == 10
  assert schema.categorical[1].num_embeddings == 4


def test_lists_become_tuples():
  schema = F.FeatureSchema([F.CategoricalFeature("a", 2)],
                           [F.NumericalFeature("x")])
  assert isinstance(schema.categorical, tuple)
  assert isinstance(schema.numerical, tuple)
  assert hash(schema) == hash(F.FeatureSchema((F.CategoricalFeature("a", 2),),
                                              (F.NumericalFeature("x"),)))


def test_duplicate_names_rejected():
  with pytest.raises(ValueError, match="feature 'a' appears twice"):
    F.FeatureSchema((F.CategoricalFeature("a", 2),), (F.NumericalFeature("a"),))
  with pytest.raises(ValueError, match="feature 'x' appears twice"):
    F.FeatureSchema((), (F.NumericalFeature("x"), F.NumericalFeature("x")))


@pytest.mark.parametrize("name", ["click", "conversion", "_oracle_relatedness",
                                  "_oracle_anything"])
def test_reserved_names_rejected(name):
  with pytest.raises(ValueError, match=f"feature name '{name}' is reserved"):
    F.FeatureSchema((F.CategoricalFeature(name, 2),), ())
  with pytest.raises(ValueError, match="reserved"):
    F.FeatureSchema((), (F.NumericalFeature(name),))


def test_empty_schema_rejected():
  with pytest.raises(ValueError, match="feature schema has no features"):
    F.FeatureSchema((), ())


# ---------------------------------------------------------------- specs

def test_parse_spec_with_labels_without_oracle():
  spec = _schema().parse_spec()
  assert set(spec) == {"user", "item", "shop", "price", "age", "click",
                       "conversion"}
  assert spec["user"].dtype == tf.int64 and spec["user"].shape == []
  assert spec["user"].default_value == -1
  assert spec["shop"].default_value == -5
  assert spec["price"].dtype == tf.float32
  assert spec["price"].default_value == 1.5
  assert spec["age"].default_value == 0.0
  for label in F.LABEL_KEYS:
    assert spec[label].dtype == tf.int64
    assert spec[label].default_value is None  # labels are required


def test_parse_spec_without_labels_with_oracle():
  spec = _schema().parse_spec(with_labels=False, with_oracle=True)
  assert set(spec) == set(_schema().feature_names) | set(F.ORACLE_KEYS)
  for key in F.ORACLE_KEYS:
    assert spec[key].dtype == tf.float32
    assert spec[key].default_value is None
  assert set(_schema().parse_spec(with_labels=False)) == set(
      _schema().feature_names)


def test_parse_spec_parses_a_record_with_defaults():
  example = tf.train.Example(features=tf.train.Features(feature={
      "user": tf.train.Feature(int64_list=tf.train.Int64List(value=[4])),
      "price": tf.train.Feature(float_list=tf.train.FloatList(value=[9.0])),
      "click": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
      "conversion": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
  }))
  parsed = tf.io.parse_example([example.SerializeToString()],
                               _schema().parse_spec())
  assert parsed["user"].numpy().tolist() == [4]
  assert parsed["item"].numpy().tolist() == [-1]
  assert parsed["shop"].numpy().tolist() == [-5]
  assert parsed["price"].numpy().tolist() == [9.0]
  assert parsed["age"].numpy().tolist() == [0.0]
  assert parsed["click"].numpy().tolist() == [1]


def test_serving_spec():
  spec = _schema().serving_spec()
  assert list(spec) == list(_schema().feature_names)
  for name in ("user", "item", "shop"):
    assert spec[name] == tf.TensorSpec([None], tf.int64, name=name)
  for name in ("price", "age"):
    assert spec[name] == tf.TensorSpec([None], tf.float32, name=name)
  assert spec["price"].name == "price"


def test_split_parsed():
  schema = _schema()
  parsed = {name: tf.constant([1, 2], tf.int64) for name in ("user", "item",
                                                             "shop")}
  parsed.update({"price": tf.constant([0.5, 1.0]), "age": tf.constant([3., 4.])})
  parsed.update({"click": tf.constant([1, 0], tf.int64),
                 "conversion": tf.constant([0, 0], tf.int64),
                 F.ORACLE_P_CLICK: tf.constant([0.1, 0.2]),
                 F.ORACLE_P_CVR: tf.constant([0.3, 0.4]),
                 F.ORACLE_RELATEDNESS: tf.constant([0.5, 0.6])})
  features, labels, oracle = schema.split_parsed(parsed)
  assert list(features) == list(schema.feature_names)
  assert features["user"] is parsed["user"]
  assert set(labels) == set(F.LABEL_KEYS)
  assert labels["click"].dtype == tf.float32
  assert labels["click"].numpy().tolist() == [1.0, 0.0]
  assert set(oracle) == set(F.ORACLE_KEYS)
  assert oracle[F.ORACLE_P_CVR].numpy().tolist() == pytest.approx([0.3, 0.4])

  bare = {k: v for k, v in parsed.items() if k in schema.feature_names}
  features, labels, oracle = schema.split_parsed(bare)
  assert len(features) == 5 and labels == {} and oracle == {}


# ---------------------------------------------------------------- serialisation

def test_to_dict_from_dict_round_trip():
  schema = _schema()
  data = schema.to_dict()
  assert [f["name"] for f in data["categorical"]] == ["user", "item", "shop"]
  assert data["numerical"][0] == {"name": "price", "mean": 2.0, "std": 4.0,
                                  "default": 1.5}
  assert F.FeatureSchema.from_dict(data) == schema
  # Through JSON (tuples become lists) and back.
  assert F.FeatureSchema.from_dict(json.loads(json.dumps(data))) == schema


def test_from_dict_defaults_optional_fields():
  schema = F.FeatureSchema.from_dict(
      {"categorical": [{"name": "a", "vocab_size": 4}],
       "numerical": [{"name": "x"}]})
  assert schema.categorical[0] == F.CategoricalFeature("a", 4)
  assert schema.numerical[0] == F.NumericalFeature("x")


@pytest.mark.parametrize("data", [
    {"categorical": []},
    {"numerical": []},
    {"categorical": [{"name": "a"}], "numerical": []},
    {"categorical": [{"name": "a", "vocab_size": 2, "colour": 1}],
     "numerical": []},
    {"categorical": [3], "numerical": []},
    [],
])
def test_from_dict_malformed(data):
  with pytest.raises(ValueError, match="malformed feature schema"):
    F.FeatureSchema.from_dict(data)


def test_from_dict_validates():
  with pytest.raises(ValueError, match="appears twice"):
    F.FeatureSchema.from_dict({"categorical": [{"name": "a", "vocab_size": 2}],
                               "numerical": [{"name": "a"}]})


def test_from_dict_wrong_field_type_is_value_error():
  with pytest.raises(ValueError, match="'a'"):
    F.FeatureSchema.from_dict({"categorical": [{"name": "a", "vocab_size": "10"}],
                               "numerical": []})


def test_save_load_round_trip(tmp_path):
  schema = _schema()
  directory = str(tmp_path / "nested" / "data")
  path = schema.save(directory)
  assert path == os.path.join(directory, F.SCHEMA_FILE)
  assert os.path.isfile(path)
  with open(path) as f:
    assert json.load(f) == json.loads(json.dumps(schema.to_dict()))
  loaded = F.FeatureSchema.load(directory)
  assert loaded == schema
  assert loaded.categorical[1].vocabulary == (100, 200, 300)


def test_load_missing_file_names_the_path(tmp_path):
  expected = os.path.join(str(tmp_path), F.SCHEMA_FILE)
  with pytest.raises(FileNotFoundError) as info:
    F.FeatureSchema.load(str(tmp_path))
  assert expected in str(info.value)


def test_load_malformed_json(tmp_path):
  (tmp_path / F.SCHEMA_FILE).write_text('{"categorical": [')
  with pytest.raises(ValueError, match="is not valid JSON") as info:
    F.FeatureSchema.load(str(tmp_path))
  assert str(tmp_path / F.SCHEMA_FILE) in str(info.value)


def test_load_valid_json_wrong_structure(tmp_path):
  (tmp_path / F.SCHEMA_FILE).write_text('{"features": []}')
  with pytest.raises(ValueError, match="malformed feature schema"):
    F.FeatureSchema.load(str(tmp_path))


# ---------------------------------------------------------------- multivalent

def _multivalent_schema():
  return F.FeatureSchema(
      (F.CategoricalFeature("user", 10),
       F.CategoricalFeature("clicked", 5, "vocabulary", (7, 8, 9, 10, 11),
                            multivalent=True)),
      (F.NumericalFeature("price"),))


def test_multivalent_parse_and_serving_specs():
  schema = _multivalent_schema()
  assert schema.has_multivalent and not _schema().has_multivalent
  spec = schema.parse_spec()
  assert isinstance(spec["clicked"], tf.io.RaggedFeature)
  assert spec["clicked"].dtype == tf.int64
  assert isinstance(spec["user"], tf.io.FixedLenFeature)
  serving = schema.serving_spec()
  assert serving["clicked"] == tf.TensorSpec([None, None], tf.int64,
                                             name="clicked")
  assert serving["user"].shape.as_list() == [None]


def test_multivalent_record_parses_ragged_with_empty_rows():
  def example(ids):
    feature = {"click": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
               "conversion": tf.train.Feature(
                   int64_list=tf.train.Int64List(value=[0]))}
    if ids is not None:
      feature["clicked"] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=ids))
    return tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString()
  parsed = tf.io.parse_example([example([7, 9, 9]), example([]), example(None)],
                               _multivalent_schema().parse_spec())
  assert isinstance(parsed["clicked"], tf.RaggedTensor)
  assert parsed["clicked"].to_list() == [[7, 9, 9], [], []]
  assert parsed["user"].numpy().tolist() == [-1, -1, -1]


def test_multivalent_round_trips_and_validates():
  schema = _multivalent_schema()
  data = json.loads(json.dumps(schema.to_dict()))
  assert data["categorical"][1]["multivalent"] is True
  assert F.FeatureSchema.from_dict(data) == schema
  old = {"categorical": [{"name": "a", "vocab_size": 3}], "numerical": []}
  assert F.FeatureSchema.from_dict(old).categorical[0].multivalent is False
  with pytest.raises(ValueError, match="'a': multivalent must be a bool"):
    F.FeatureSchema((F.CategoricalFeature("a", 3, multivalent=1),), ())


def test_serving_inputs_pad_lists_with_the_default():
  schema = _multivalent_schema()
  parsed = {"user": tf.constant([1, 2], tf.int64),
            "clicked": tf.ragged.constant([[7, 8], []], tf.int64),
            "price": tf.constant([1.0, 2.0])}
  inputs = schema.serving_inputs(parsed)
  assert inputs["clicked"].numpy().tolist() == [[7, 8], [-1, -1]]
  assert inputs["user"] is parsed["user"]
  for name, spec in schema.serving_spec().items():
    assert spec.is_compatible_with(inputs[name])


def test_row_keys_round_trip_parse_only_on_request_and_must_be_new_names(
    tmp_path):
  categorical = (F.CategoricalFeature("categorical_1", 10),)
  numerical = (F.NumericalFeature("x"),)
  schema = F.FeatureSchema(categorical, numerical, keys=["search_id"])
  schema.save(str(tmp_path))
  assert F.FeatureSchema.load(str(tmp_path)) == schema
  assert schema.keys == ("search_id",)
  assert "keys" not in F.FeatureSchema(categorical, numerical).to_dict()
  assert "search_id" not in schema.parse_spec()
  assert "search_id" not in schema.parse_spec(with_labels=False)
  assert schema.parse_spec(with_keys=True)["search_id"].dtype == tf.int64
  example = tf.train.Example(features=tf.train.Features(feature={
      "categorical_1": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
      "x": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
      "click": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
      "conversion": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
      "search_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[77])),
  })).SerializeToString()
  parsed = tf.io.parse_example([example], schema.parse_spec(with_keys=True))
  features, labels, extra = schema.split_parsed(parsed)
  assert set(features) == {"categorical_1", "x"}
  assert extra["search_id"].numpy().tolist() == [77]
  for clash in ("categorical_1", "click", F.ORACLE_P_CLICK, ""):
    with pytest.raises(ValueError, match="must be a new name"):
      F.FeatureSchema(categorical, numerical, keys=[clash])
