"""THE feature schema: every feature, label and output key lives here.

One `FeatureSchema` drives parsing (`parse_spec`), the in-graph preprocessing
(`adaftr_tf.layers.preprocessing.FeatureEncoder`), the embedding sizes, the
synthetic generator and the serving signatures (`serving_spec`). It is stored
as `schema.json` next to every converted or generated dataset.

Records are `tf.train.Example`s holding raw values:
  * categorical feature  -> int64 id (raw; mapped to an embedding row in-graph);
    a `multivalent` one holds a variable-length int64 list (possibly empty),
    parsed as a ragged `[batch, None]` tensor and pooled into one embedding,
  * numerical feature    -> float32 value (raw; normalised in-graph),
  * two labels -> int64 0/1, named by the schema (`labels`, default `click`,
    `conversion`: conversion = click-and-purchase on the same impression).
    `label_relation` says how they relate: `funnel` (the second implies the
    first, the CTR/CVR funnel) or `independent` (any two binary tasks, e.g.
    census income and marital status). In memory the first label is always
    keyed `click` and the second `conversion` (`split_parsed`), whatever the
    records call them,
  * optional oracle keys (synthetic data only, prefix `_oracle_`) that the model
    never reads: planted relatedness and true probabilities,
  * optional row keys (`keys`: int64, e.g. AliExpress's search session
    `search_id`) that group rows for evaluation (GAUC) and are never model or
    serving inputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import tensorflow as tf

# The field types, part of the schema's API (F.CategoricalFeature, ...).
from adaftr_tf.feature_fields import CATEGORICAL_ENCODINGS  # noqa: F401
from adaftr_tf.feature_fields import CategoricalFeature
from adaftr_tf.feature_fields import NumericalFeature

# Labels: the in-memory keys of the first and second task's labels, and the
# record names of the CTR/CVR datasets.
CLICK = "click"
CONVERSION = "conversion"
LABEL_KEYS = (CLICK, CONVERSION)
FUNNEL = "funnel"
INDEPENDENT = "independent"
LABEL_RELATIONS = (FUNNEL, INDEPENDENT)

# Oracle keys written by the synthetic generator; never fed to a model.
ORACLE_PREFIX = "_oracle_"
ORACLE_RELATEDNESS = "_oracle_relatedness"
ORACLE_P_CLICK = "_oracle_p_click"
ORACLE_P_CVR = "_oracle_p_cvr"
ORACLE_KEYS = (ORACLE_RELATEDNESS, ORACLE_P_CLICK, ORACLE_P_CVR)

# Model outputs.
CTR = "ctr"
CVR = "cvr"
CTCVR = "ctcvr"
CTR_LOGIT = "ctr_logit"
CVR_LOGIT = "cvr_logit"
CTCVR_LOGIT = "ctcvr_logit"
H_CTR = "h_ctr"
H_CVR = "h_cvr"
TAU = "tau"
SERVING_OUTPUTS = (CTR, CVR, CTCVR)  # the funnel's (adaftr_tf/objective.py)

# Files.
SCHEMA_FILE = "schema.json"
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class FeatureSchema:
  """The ordered input fields of a dataset and its two labels.

  Attributes:
    categorical, numerical: the input fields, in order.
    labels: the record names of the first and second task's labels.
    label_relation: `funnel` (the second label implies the first: click ->
      conversion) or `independent` (two binary tasks over every row).
    keys: int64 record columns that identify a row's group (a search
      session, a user) for evaluation only: parsed with `with_keys`, never
      a model or serving input.
  """

  categorical: tuple[CategoricalFeature, ...]
  numerical: tuple[NumericalFeature, ...]
  labels: tuple[str, str] = LABEL_KEYS
  label_relation: str = FUNNEL
  keys: tuple[str, ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "categorical", tuple(self.categorical))
    object.__setattr__(self, "numerical", tuple(self.numerical))
    object.__setattr__(self, "labels", tuple(self.labels))
    object.__setattr__(self, "keys", tuple(self.keys))
    self.validate()

  def validate(self) -> None:
    if not self.categorical and not self.numerical:
      raise ValueError("feature schema has no features")
    if len(set(self.labels)) != 2 or len(self.labels) != 2 or not all(
        isinstance(k, str) and k and not k.startswith(ORACLE_PREFIX)
        for k in self.labels):
      raise ValueError(f"feature schema labels must be two different names "
                       f"not starting with {ORACLE_PREFIX!r}, got {self.labels!r}")
    if self.label_relation not in LABEL_RELATIONS:
      raise ValueError(f"feature schema: unknown label_relation "
                       f"{self.label_relation!r}; valid: {LABEL_RELATIONS}")
    seen = set()
    for feature in (*self.categorical, *self.numerical):
      feature.validate()
      if feature.name in seen:
        raise ValueError(f"feature {feature.name!r} appears twice in the schema")
      if feature.name in self.labels or feature.name.startswith(ORACLE_PREFIX):
        raise ValueError(f"feature name {feature.name!r} is reserved (labels "
                         f"{self.labels}, prefix {ORACLE_PREFIX!r})")
      seen.add(feature.name)
    for key in self.keys:
      if (not isinstance(key, str) or not key or key in seen
          or key in self.labels or key.startswith(ORACLE_PREFIX)):
        raise ValueError(f"feature schema key {key!r} must be a new name (not "
                         f"a feature, a label or {ORACLE_PREFIX!r}...)")
      seen.add(key)

  @property
  def feature_names(self) -> tuple[str, ...]:
    return tuple(f.name for f in (*self.categorical, *self.numerical))

  @property
  def has_multivalent(self) -> bool:
    """Whether any categorical field holds a list of ids per row."""
    return any(f.multivalent for f in self.categorical)

  @property
  def categorical_sizes(self) -> tuple[int, ...]:
    """Embedding rows per categorical field (vocabulary + OOV bucket)."""
    return tuple(f.num_embeddings for f in self.categorical)

  def feature_spec(self) -> dict[str, Any]:
    """Parse spec of the input features; every one has a default.

    Single-valued fields parse to `[batch]` (FixedLenFeature with a default);
    multivalent ones to a ragged `[batch, None]` int64 (RaggedFeature: a
    missing list is an empty row).
    """
    spec = {f.name: (tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
                     if f.multivalent else
                     tf.io.FixedLenFeature([], tf.int64, default_value=f.default))
            for f in self.categorical}
    spec.update({f.name: tf.io.FixedLenFeature([], tf.float32,
                                               default_value=f.default)
                 for f in self.numerical})
    return spec

  def parse_spec(self, with_labels: bool = True, with_oracle: bool = False,
                 with_keys: bool = False) -> dict[str, Any]:
    """Spec for `tf.io.parse_example`: features, labels (required), oracle,
    row keys (required)."""
    spec = self.feature_spec()
    if with_labels:
      spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in self.labels})
    if with_oracle:
      spec.update({k: tf.io.FixedLenFeature([], tf.float32) for k in ORACLE_KEYS})
    if with_keys:
      spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in self.keys})
    return spec

  def serving_spec(self) -> dict[str, tf.TensorSpec]:
    """One raw tensor per feature, `[None]`, as TF Serving's REST API sends.

    A multivalent field is `[None, None]` int64, each row right-padded with
    the field's `default` (signatures take no ragged tensors).
    """
    spec = {f.name: tf.TensorSpec([None, None] if f.multivalent else [None],
                                  tf.int64, name=f.name)
            for f in self.categorical}
    spec.update({f.name: tf.TensorSpec([None], tf.float32, name=f.name)
                 for f in self.numerical})
    return spec

  def serving_inputs(self, parsed: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    """Parsed features -> the dense tensors `serving_spec` describes.

    Multivalent (ragged) fields are right-padded with their `default`;
    other fields pass through.
    """
    out = {}
    for name in self.feature_names:
      value = parsed[name]
      if isinstance(value, tf.RaggedTensor):
        default = self.serving_defaults[name]
        value = value.to_tensor(default_value=tf.cast(default, value.dtype))
      out[name] = value
    return out

  @property
  def serving_defaults(self) -> dict[str, Any]:
    """Feature name -> its default raw value."""
    return {f.name: f.default for f in (*self.categorical, *self.numerical)}

  def default_features(self) -> dict[str, tf.Tensor]:
    """One row of every feature's default, `[1]` each (builds a model)."""
    features = {f.name: tf.constant([f.default], tf.int64)
                for f in self.categorical}
    features.update({f.name: tf.constant([f.default], tf.float32)
                     for f in self.numerical})
    return features

  def split_parsed(self, parsed: Mapping[str, tf.Tensor]):
    """Splits a parsed batch into (features, labels, extra) dicts.

    Labels are cast to float32 `[batch]` and keyed LABEL_KEYS (the first
    task's label `click`, the second's `conversion`, whatever `labels` names
    them in the records); extra holds the oracle columns and the row keys
    that were parsed (empty when none).
    """
    features = {name: parsed[name] for name in self.feature_names}
    labels = {key: tf.cast(parsed[name], tf.float32)
              for key, name in zip(LABEL_KEYS, self.labels) if name in parsed}
    extra = {k: parsed[k] for k in (*ORACLE_KEYS, *self.keys) if k in parsed}
    return features, labels, extra

  # --- serialisation -------------------------------------------------------
  def to_dict(self) -> dict[str, Any]:
    return {"categorical": [dataclasses.asdict(f) for f in self.categorical],
            "numerical": [dataclasses.asdict(f) for f in self.numerical],
            "labels": list(self.labels),
            "label_relation": self.label_relation,
            **({"keys": list(self.keys)} if self.keys else {})}

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSchema":
    try:
      categorical = tuple(
          CategoricalFeature(**{**f, "vocabulary": tuple(f.get("vocabulary", ()))})
          for f in data["categorical"])
      numerical = tuple(NumericalFeature(**f) for f in data["numerical"])
      # Schemas written before the labels were named hold click/conversion.
      return cls(categorical, numerical,
                 tuple(data.get("labels", LABEL_KEYS)),
                 data.get("label_relation", FUNNEL), tuple(data.get("keys", ())))
    except (KeyError, TypeError) as err:
      raise ValueError(f"malformed feature schema: {err}") from err

  def save(self, directory: str, storage: Mapping[str, Any] | None = None
           ) -> str:
    """Writes `schema.json`; `storage` (how a dataset's records are laid
    out, pipelines/data/layout.py) is written beside the fields, not part of
    the schema (`load` ignores it)."""
    path = os.path.join(directory, SCHEMA_FILE)
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(path, "w") as f:
      json.dump({**self.to_dict(), **(storage or {})}, f, indent=1)
    return path

  @classmethod
  def load(cls, directory: str) -> "FeatureSchema":
    path = os.path.join(directory, SCHEMA_FILE)
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f"no feature schema at {path}: the data directory "
                              "must hold the output of the converter or the "
                              "synthetic generator")
    with tf.io.gfile.GFile(path) as f:
      try:
        data = json.load(f)
      except json.JSONDecodeError as err:
        raise ValueError(f"feature schema {path} is not valid JSON: {err}") from err
    return cls.from_dict(data)

