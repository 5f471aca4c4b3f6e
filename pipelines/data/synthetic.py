"""The embedded default dataset: a seeded synthetic e-commerce impression log.

Shaped like AliExpress by default (`categorical_1..16`, `numerical_1..63`, a
~5% click rate and a ~10% post-click purchase rate), with instance-level task
relatedness planted so that AdaFTR's learned temperature has something to find.

Generative process (all "world" parameters depend on `config.seed` only; each
split is an independent draw from the world with a seed derived from
`(seed, split name)`):

  World, per categorical field f and id k:
    E_f[k] ~ N(0, I/F) in R^d   preference vector (drives clicks)
    G_f[k] ~ N(0, I/F) in R^d   independent purchase vector
    rho_f[k] ~ N(0, 1)          relatedness, nonzero on 3 random fields only
    w, w' ~ N(0, I/d); beta: weights of 2 pure-noise numerical fields in r.
  Per impression:
    id_f ~ Zipf-like popularity, p(rank) ∝ 1/(rank + 10)^1.1, ranks permuted
      to ids per field;
    z, z' ~ N(0, I_d) independent latent intents;
    numerical x_j = sigmoid(a_j · latent + eps), eps ~ N(0, 1), latent = z for
      about a third of the fields, z' for a third, none (pure noise) for
      the rest;
    c = std(<Σ_f E_f[id_f] + z, w>),  q = std(<Σ_f G_f[id_f] + z', w'>),
    r = sigmoid(3 · std(Σ_f rho_f[id_f] + Σ_k beta_k (x_k - 1/2))) in [0, 1],
      where std() standardises with world moments from a calibration draw;
    p_click = sigmoid(s·c + b_click),
    p_cvr = sigmoid(s·(r·c + (1-r)·q) / sqrt(r² + (1-r)²) + b_cvr),
      s = signal_scale; the mixture keeps unit variance, so r only changes how
      much the purchase logit shares with the click logit;
    click ~ Bernoulli(p_click), purchase ~ Bernoulli(p_cvr),
    conversion = click AND purchase.
  b_click, b_cvr are solved by bisection on the calibration draw so that
  mean p_click = click_rate and Σ p_click·p_cvr / Σ p_click = cvr_rate.

Every row also carries the oracle columns (ORACLE_KEYS): r, p_click, p_cvr.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import zlib

from adaftr_tf import features as F
from adaftr_tf.config import SyntheticConfig
import numpy as np
import tensorflow as tf

from pipelines.data import files
from pipelines.data import layout as layout_lib

SYNTHETIC_FILE = "synthetic.json"

_CALIBRATION_ROWS = 200_000
_RELATED_FIELDS = 3      # categorical fields with nonzero rho
_R_NUMERICAL = 2         # pure-noise numerical fields that also enter r
_R_BETA = 4.0            # |beta|: x - 1/2 has std ~0.2, so each adds ~0.6 std
_R_SHARPNESS = 3.0
_BISECT_STEPS = 60


@dataclasses.dataclass(frozen=True)
class _World:
  """Parameters shared by all splits (F fields, V ids, N numericals, d dims)."""

  cdf: np.ndarray          # [V] cumulative popularity by rank
  rank_to_id: np.ndarray   # [F, V] per-field permutation
  click_proj: np.ndarray   # [F, V] <E_f[k], w>
  buy_proj: np.ndarray     # [F, V] <G_f[k], w'>
  rho: np.ndarray          # [F, V]
  w: np.ndarray            # [d]
  w_prime: np.ndarray      # [d]
  loadings: np.ndarray     # [N, 2d] rows load on z (first d) or z' (last d)
  r_fields: np.ndarray     # [<=2] numerical indices entering r
  r_beta: np.ndarray       # [<=2]
  moments: tuple = ()      # (mean, std) of raw c, q, r
  b_click: float = 0.0
  b_cvr: float = 0.0


def _rng(config: SyntheticConfig, stream: str) -> np.random.Generator:
  # crc32, unlike hash(), is stable across processes.
  return np.random.default_rng([config.seed, zlib.crc32(stream.encode())])


def _validate(config: SyntheticConfig) -> None:
  checks = {
      "num_categorical, num_numerical >= 0":
          min(config.num_categorical, config.num_numerical) >= 0,
      "num_categorical + num_numerical >= 1":
          config.num_categorical + config.num_numerical >= 1,
      "vocab_size >= 1": config.vocab_size >= 1,
      "latent_dim >= 1": config.latent_dim >= 1,
      "0 < click_rate < 1": 0 < config.click_rate < 1,
      "0 < cvr_rate < 1": 0 < config.cvr_rate < 1,
      "num_shards >= 1": config.num_shards >= 1,
      "seed >= 0": config.seed >= 0,
      "num_train, num_valid, num_test >= 0":
          min(config.num_train, config.num_valid, config.num_test) >= 0,
  }
  failed = [name for name, ok in checks.items() if not ok]
  if failed:
    raise ValueError(f"invalid SyntheticConfig {config}: needs {failed}")


def _make_world(config: SyntheticConfig) -> _World:
  """Draws the world parameters (everything except biases and moments)."""
  rng = _rng(config, "world")
  nf, v, d, nn = (config.num_categorical, config.vocab_size, config.latent_dim,
                  config.num_numerical)
  popularity = 1.0 / (np.arange(v) + 10.0) ** 1.1
  cdf = np.cumsum(popularity / popularity.sum())
  rank_to_id = np.array([rng.permutation(v) for _ in range(nf)],
                        np.int64).reshape(nf, v)
  w = rng.normal(size=d) / np.sqrt(d)
  w_prime = rng.normal(size=d) / np.sqrt(d)
  # Only the projections on w, w' matter for the scores; keep those.
  pref = rng.normal(size=(nf, v, d)) / np.sqrt(nf)
  buy = rng.normal(size=(nf, v, d)) / np.sqrt(nf)
  rho = np.zeros((nf, v))
  related = rng.choice(nf, size=min(_RELATED_FIELDS, nf), replace=False)
  rho[related] = rng.normal(size=(len(related), v))
  source = rng.permutation(np.arange(nn) % 3)   # 0: z, 1: z', 2: noise
  loadings = np.zeros((nn, 2 * d))
  for j, s in enumerate(source):
    if s < 2:
      loadings[j, s * d:(s + 1) * d] = rng.normal(size=d) / np.sqrt(d)
  r_fields = np.flatnonzero(source == 2)[:_R_NUMERICAL]
  r_beta = _R_BETA * rng.choice([-1.0, 1.0], size=len(r_fields))
  return _World(cdf, rank_to_id, pref @ w, buy @ w_prime, rho, w, w_prime,
                loadings, r_fields, r_beta)


def _draw(world: _World, rng: np.random.Generator, n: int,
          numerical: np.ndarray):
  """Draws n impressions: ids, numerical values and raw scores.

  Args:
    numerical: indices of the numerical fields to materialise.

  Returns:
    ids [F, n] int64, x [len(numerical), n] float32 and the raw
    (c, q, r) scores, each [n] float64.
  """
  num_fields = world.rank_to_id.shape[0]
  ranks = np.searchsorted(world.cdf, rng.random((num_fields, n)))
  ranks = np.minimum(ranks, len(world.cdf) - 1)   # guards cdf[-1] < 1 rounding
  rows = np.arange(num_fields)[:, None]
  ids = world.rank_to_id[rows, ranks].astype(np.int64)
  d = len(world.w)
  latent = rng.standard_normal((2 * d, n))          # z (first d), z' (last d)
  loadings = world.loadings[numerical].astype(np.float32)
  x = loadings @ latent.astype(np.float32)
  x += rng.standard_normal(x.shape, dtype=np.float32)
  x = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
  c = world.click_proj[rows, ids].sum(0) + world.w @ latent[:d]
  q = world.buy_proj[rows, ids].sum(0) + world.w_prime @ latent[d:]
  pos = np.searchsorted(numerical, world.r_fields)  # r_fields ⊂ numerical
  r = world.rho[rows, ids].sum(0) + world.r_beta @ (x[pos] - 0.5)
  return ids, x, (c, q, r)


def _bisect(fn, target: float, lo: float = -40.0, hi: float = 40.0) -> float:
  """Solves fn(b) = target for an increasing fn."""
  for _ in range(_BISECT_STEPS):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if fn(mid) < target else (lo, mid)
  return 0.5 * (lo + hi)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _probabilities(world: _World, raw, config: SyntheticConfig,
                   b_click: float, b_cvr: float):
  """Raw scores -> (r, p_click, p_cvr, click logit, purchase logit w/o bias).

  `config.relatedness` `one` / `zero` replace the planted r(x) by a constant
  (the control worlds: the purchase logit is the click logit / independent).
  """
  (c, q, r_raw), moments = raw, world.moments
  c = (c - moments[0][0]) / moments[0][1]
  q = (q - moments[1][0]) / moments[1][1]
  r = _sigmoid(_R_SHARPNESS * (r_raw - moments[2][0]) / moments[2][1])
  if config.relatedness != "planted":
    r = np.full_like(r, 1.0 if config.relatedness == "one" else 0.0)
  mix = (r * c + (1 - r) * q) / np.sqrt(r ** 2 + (1 - r) ** 2)
  click_logit, buy_logit = config.signal_scale * c, config.signal_scale * mix
  return r, _sigmoid(click_logit + b_click), _sigmoid(buy_logit + b_cvr), \
      click_logit, buy_logit


@functools.lru_cache(maxsize=4)
def _calibrated_world(config: SyntheticConfig) -> _World:
  """The world with score moments and biases fitted on a calibration draw."""
  _validate(config)
  world = _make_world(config)
  _, _, raw = _draw(world, _rng(config, "calibration"), _CALIBRATION_ROWS,
                    world.r_fields)
  world = dataclasses.replace(
      world, moments=tuple((float(s.mean()), float(s.std()) or 1.0)
                           for s in raw))
  _, _, _, click_logit, buy_logit = _probabilities(world, raw, config, 0.0,
                                                   0.0)
  b_click = _bisect(lambda b: _sigmoid(click_logit + b).mean(),
                    config.click_rate)
  p_click = _sigmoid(click_logit + b_click)
  b_cvr = _bisect(lambda b: (p_click * _sigmoid(buy_logit + b)).sum()
                  / p_click.sum(), config.cvr_rate)
  return dataclasses.replace(world, b_click=b_click, b_cvr=b_cvr)


def aliexpress_like_schema(num_categorical: int = 16, num_numerical: int = 63,
                           vocab_sizes: tuple[int, ...] = (1000,)
                           ) -> F.FeatureSchema:
  """AliExpress's field layout (`categorical_1..16`, `numerical_1..63`).

  `vocab_sizes` is cycled over the categorical fields.
  """
  categorical = tuple(
      F.CategoricalFeature(f"categorical_{i + 1}",
                           vocab_sizes[i % len(vocab_sizes)])
      for i in range(num_categorical))
  numerical = tuple(F.NumericalFeature(f"numerical_{i + 1}")
                    for i in range(num_numerical))
  return F.FeatureSchema(categorical, numerical)


def synthetic_schema(config: SyntheticConfig,
                     numerical_stats=None) -> F.FeatureSchema:
  """The generator's feature schema (identity-encoded ids, raw numericals).

  Args:
    config: the synthetic config (field counts, vocab_size).
    numerical_stats: optional dict name -> (mean, std) for every numerical
      field; without it the fields keep mean 0, std 1.
  """
  schema = aliexpress_like_schema(config.num_categorical,
                                  config.num_numerical, (config.vocab_size,))
  if numerical_stats is None:
    return schema
  names = {f.name for f in schema.numerical}
  if set(numerical_stats) != names:
    raise ValueError("numerical_stats must cover exactly the numerical fields; "
                     f"missing {sorted(names - set(numerical_stats))}, unknown "
                     f"{sorted(set(numerical_stats) - names)}")
  numerical = tuple(
      dataclasses.replace(f, mean=float(numerical_stats[f.name][0]),
                          std=float(numerical_stats[f.name][1]))
      for f in schema.numerical)
  return F.FeatureSchema(schema.categorical, numerical)


def relatedness_fields(config: SyntheticConfig) -> tuple[str, ...]:
  """The feature names the planted relatedness r(x) is a function of."""
  world = _make_world(config)
  schema = synthetic_schema(config)
  related = np.flatnonzero(np.abs(world.rho).sum(axis=1) > 0)
  return (tuple(schema.categorical[i].name for i in related)
          + tuple(schema.numerical[j].name for j in world.r_fields))


def stored_config(data_dir: str) -> SyntheticConfig | None:
  """The config a synthetic dataset in `data_dir` was generated with (its
  `synthetic.json`), or None for a data directory of other data."""
  stored = _stored_config_dict(data_dir)
  return None if stored is None else SyntheticConfig(**stored)


def _stored_config_dict(data_dir: str) -> dict | None:
  """The `config` of `data_dir`'s `synthetic.json` (None without one).

  Raises:
    ValueError: naming the file, if it is not valid JSON with a config.
  """
  meta_path = os.path.join(data_dir, SYNTHETIC_FILE)
  if not tf.io.gfile.exists(meta_path):
    return None
  with tf.io.gfile.GFile(meta_path) as f:
    try:
      return json.load(f).get("config")
    except (json.JSONDecodeError, AttributeError) as err:
      raise ValueError(f"{meta_path} is not a valid {SYNTHETIC_FILE}: "
                       f"{err}") from err


def split_rows(config: SyntheticConfig, split: str) -> int:
  """Configured row count of `split`."""
  counts = dict(zip(F.SPLITS, (config.num_train, config.num_valid,
                               config.num_test)))
  if split not in counts:
    raise ValueError(f"unknown split {split!r}; valid: {F.SPLITS}")
  return counts[split]


def generate_split(config: SyntheticConfig, split: str,
                   num_rows: int | None = None) -> dict[str, np.ndarray]:
  """Draws one split of the log.

  Args:
    config: the synthetic config; the world depends on its seed only.
    split: one of SPLITS; selects an independent draw from the same world.
    num_rows: rows to draw; defaults to the config's count for `split`.

  Returns:
    name -> [num_rows] array: categorical features (int64), numerical features
    (float32), LABEL_KEYS (int64 0/1) and ORACLE_KEYS (float32).
  """
  rows = split_rows(config, split) if num_rows is None else int(num_rows)
  if rows < 0:
    raise ValueError(f"num_rows must be >= 0, got {rows}")
  world = _calibrated_world(config)
  rng = _rng(config, f"split/{split}")
  all_numerical = np.arange(config.num_numerical)
  ids, x, raw = _draw(world, rng, rows, all_numerical)
  r, p_click, p_cvr, _, _ = _probabilities(world, raw, config, world.b_click,
                                           world.b_cvr)
  click = rng.random(rows) < p_click
  purchase = rng.random(rows) < p_cvr
  schema = synthetic_schema(config)
  columns = {f.name: ids[i] for i, f in enumerate(schema.categorical)}
  columns.update({f.name: x[j] for j, f in enumerate(schema.numerical)})
  columns[F.CLICK] = click.astype(np.int64)
  columns[F.CONVERSION] = (click & purchase).astype(np.int64)
  columns[F.ORACLE_RELATEDNESS] = r.astype(np.float32)
  columns[F.ORACLE_P_CLICK] = p_click.astype(np.float32)
  columns[F.ORACLE_P_CVR] = p_cvr.astype(np.float32)
  return columns


def _split_stats(columns) -> dict[str, float]:
  click, conversion = columns[F.CLICK], columns[F.CONVERSION]
  rows = max(len(click), 1)   # an empty split reports zeros, not NaN
  return {"rows": int(len(click)),
          "click_rate": float(click.sum() / rows),
          "conversion_rate": float(conversion.sum() / rows),
          "post_click_cvr": float(conversion.sum() / max(click.sum(), 1)),
          "mean_relatedness":
              float(columns[F.ORACLE_RELATEDNESS].sum(dtype=np.float64) / rows)}


def _numerical_stats(columns, config: SyntheticConfig):
  """name -> (mean, std) of every numerical column."""
  stats = {}
  for f in synthetic_schema(config).numerical:
    values = columns[f.name].astype(np.float64)
    mean, std = (float(values.mean()), float(values.std())) if len(values) \
        else (0.0, 0.0)
    # A constant column (tiny splits only) would make the schema invalid;
    # std 1 leaves it centred and unscaled.
    stats[f.name] = (mean, std if std > 0 else 1.0)
  return stats


def write_synthetic_dataset(config: SyntheticConfig, data_dir: str,
                            log=print,
                            layout: layout_lib.Layout = layout_lib.Layout()
                            ) -> F.FeatureSchema:
  """Generates all splits and writes them as a dataset directory.

  Numerical mean/std are fitted on the train split only. Everything is written
  into a temporary sibling directory that is renamed into place at the end, so
  an interrupted run never leaves a half-written `data_dir`.

  Layout: `{split}-0000i-of-0000n.tfrecord` shards (config.num_shards per
  split) of records in `layout` (default: row blocks), `schema.json`,
  `shards.json` (shard sizes, see `records.check_manifest`, and the
  layout) and `synthetic.json` (the config and per-split stats).

  Raises:
    ValueError: if `data_dir` exists and is not empty.
  """
  _validate(config)
  data_dir = files.absolute(data_dir)
  if files.is_nonempty_dir(data_dir):
    raise ValueError(f"refusing to write synthetic data into non-empty "
                     f"{data_dir}; pick another --data_dir")
  tmp_dir = f"{data_dir}.tmp-{os.getpid()}"
  files.remove_dir(tmp_dir)
  try:
    stats, schema = {}, None
    for split in F.SPLITS:
      start = time.time()
      columns = generate_split(config, split)
      if schema is None:   # SPLITS[0] is train: stats come from it alone
        schema = synthetic_schema(config, _numerical_stats(columns, config))
      layout_lib.write_sharded(columns, tmp_dir, split, config.num_shards,
                               layout)
      stats[split] = _split_stats(columns)
      del columns
      log(f"synthetic {split}: {stats[split]['rows']} rows, click rate "
          f"{stats[split]['click_rate']:.4f}, post-click cvr "
          f"{stats[split]['post_click_cvr']:.4f}, mean r "
          f"{stats[split]['mean_relatedness']:.3f} "
          f"({time.time() - start:.1f}s)")
    layout_lib.save(tmp_dir, schema, layout)
    with tf.io.gfile.GFile(os.path.join(tmp_dir, SYNTHETIC_FILE), "w") as f:
      json.dump({"config": dataclasses.asdict(config), "splits": stats}, f,
                indent=1)
    try:
      files.move_dir(tmp_dir, data_dir)
    except (OSError, tf.errors.OpError):
      # Another worker of the same job may have finished first: use its copy
      # (ensure_synthetic_dataset checks that its config matches).
      if not tf.io.gfile.exists(os.path.join(data_dir, SYNTHETIC_FILE)):
        raise
      files.remove_dir(tmp_dir)
      return ensure_synthetic_dataset(config, data_dir, log, layout)
  except BaseException:
    files.remove_dir(tmp_dir)
    raise
  log(f"synthetic dataset written to {data_dir} ({layout.describe()})")
  return schema


def _config_diff(stored, config: SyntheticConfig) -> list[str]:
  # A JSON round trip makes tuples/lists and ints/floats compare alike; a
  # field added since the data was written counts at its default.
  wanted = json.loads(json.dumps(dataclasses.asdict(config)))
  defaults = json.loads(json.dumps(dataclasses.asdict(SyntheticConfig())))
  stored = {**defaults, **stored} if isinstance(stored, dict) else {}
  return [f"{k}: stored {stored.get(k)!r}, requested {wanted.get(k)!r}"
          for k in sorted(set(wanted) | set(stored))
          if stored.get(k) != wanted.get(k)]


def ensure_synthetic_dataset(config: SyntheticConfig, data_dir: str,
                             log=print,
                             layout: layout_lib.Layout = layout_lib.Layout()
                             ) -> F.FeatureSchema:
  """Returns the schema of the synthetic dataset in `data_dir`, generating it
  in `layout` (an existing dataset is used in the layout it records).

  Raises:
    ValueError: if `data_dir` holds a synthetic dataset generated with a
      different config (the differing fields are named), or holds anything
      that is not a synthetic dataset.
  """
  if tf.io.gfile.exists(os.path.join(data_dir, SYNTHETIC_FILE)):
    diff = _config_diff(_stored_config_dict(data_dir), config)
    if diff:
      raise ValueError(
          f"{data_dir} holds a synthetic dataset generated with a different "
          f"config ({'; '.join(diff)}); use another --data_dir (or delete "
          "this one to regenerate)")
    log(f"using synthetic dataset in {data_dir} "
        f"({layout_lib.load(data_dir).describe()})")
    return F.FeatureSchema.load(data_dir)
  if files.is_nonempty_dir(data_dir):
    raise ValueError(f"{data_dir} is not empty but holds no {SYNTHETIC_FILE}: "
                     "it is not a synthetic dataset; use another --data_dir "
                     "for synthetic data")
  return write_synthetic_dataset(config, data_dir, log, layout)
