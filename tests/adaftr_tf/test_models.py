"""Tests of adaftr_tf.models: outputs, one train step updates every variable,
fit gives every metric; mixed precision and XLA options."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf import overrides
from adaftr_tf.losses import ctcvr_bce, info_nce
from pipelines.data import reader
from pipelines.data import synthetic
from tests.helpers.data import PAPER_READING
from tests.helpers.data import in_memory_dataset
from tests.helpers.data import synthetic_batch
from tests.helpers.data import synthetic_columns
from tests.helpers.data import tiny_config
from tests.helpers.xla import entry_parameters
from tests.helpers.xla import inputs

EXPECTED_METRICS = {"loss", "ctr_auc", "ctr_logloss", "cvr_auc", "cvr_logloss",
                    "ctr_pred_obs", "cvr_pred_obs", "ctcvr_pred_obs",
                    "ctcvr_auc", "ctcvr_logloss"}
CONTRASTIVE_METRICS = {"cl_loss", "tau_mean"}


@pytest.mark.parametrize("name", ["adaftr", "multitask"])
def test_outputs_shapes_and_ctcvr_product(name):
  config = tiny_config(f"model.name={name}")
  (features, _), schema = synthetic_batch(config, 64)
  model = models.build_model(config, schema)
  outputs = model(features, training=False)
  for key in (F.CTR, F.CVR, F.CTCVR, F.CTR_LOGIT, F.CVR_LOGIT, F.CTCVR_LOGIT):
    assert outputs[key].shape == (64,)
  assert outputs[F.H_CTR].shape == (64, config.model.tower_units[-1])
  np.testing.assert_allclose(outputs[F.CTCVR], outputs[F.CTR] * outputs[F.CVR],
                             rtol=1e-5, atol=1e-7)
  assert (F.TAU in outputs) == (name == "adaftr")


def test_one_train_step_changes_every_trainable_variable():
  config = tiny_config("train.learning_rate=0.01")
  batch, schema = synthetic_batch(config)
  model = models.compile_model(models.build_model(config, schema), config)
  model.train_step(batch)  # creates the optimizer slots and every variable
  before = [v.numpy().copy() for v in model.trainable_variables]
  model.train_step(batch)
  unchanged = [v.name for v, old in zip(model.trainable_variables, before)
               if np.array_equal(v.numpy(), old)]
  assert len(before) > 20
  assert not unchanged, f"variables not updated by a train step: {unchanged}"


def test_mmoe_model_has_no_alignment_variables():
  config = tiny_config("model.name=multitask")
  batch, schema = synthetic_batch(config)
  model = models.compile_model(models.build_model(config, schema), config)
  model.train_step(batch)
  names = [v.name for v in model.trainable_variables]
  assert not any("alignment" in n or "relatedness" in n for n in names)


def test_click_gate_model_trains_its_gate_from_the_task_losses():
  config = tiny_config("model.name=multitask", "model.click_gate=true",
                       "train.learning_rate=0.01")
  batch, schema = synthetic_batch(config)
  model = models.compile_model(models.build_model(config, schema), config)
  model.train_step(batch)
  gate = [v for v in model.trainable_variables if "click_gate" in v.name]
  assert len(gate) == 2   # kernel and bias
  before = [v.numpy().copy() for v in gate]
  model.train_step(batch)
  assert all(not np.array_equal(v.numpy(), old) for v, old in zip(gate, before))
  outputs = model(batch[0], training=False)
  np.testing.assert_allclose(outputs[F.CTCVR], outputs[F.CTR] * outputs[F.CVR],
                             rtol=1e-5, atol=1e-7)


def test_xla_refuses_hash_encoded_fields_at_build():
  config = tiny_config("runtime.jit_compile=true")
  _, schema = synthetic_batch(config)
  models.build_model(config, schema)   # identity fields: fine
  hashed = dataclasses.replace(schema, categorical=(dataclasses.replace(
      schema.categorical[0], encoding="hash"),) + schema.categorical[1:])
  with pytest.raises(ValueError, match=r"jit_compile=true cannot compile the "
                     r"string hash of the hash-encoded fields \['categorical_1"):
    models.build_model(config, hashed)


def test_the_group_field_is_checked_against_the_data_at_build():
  from adaftr_tf.config import ConfigError
  config = tiny_config("data.group_field=user_id")
  schema = synthetic.synthetic_schema(config.data.synthetic)
  with pytest.raises(ConfigError, match=(
      r"^data.group_field='user_id' is not a row key or a single-valued "
      r"categorical field of the data; choose one of \['auto', 'categorical_1', "
      r"'categorical_2', 'categorical_3', 'categorical_4'\]$")):
    models.build_model(config, schema)
  models.build_model(tiny_config("data.group_field=categorical_3"), schema)


@pytest.mark.slow  # 2 epochs of fit and evaluation (~4-6 s)
@pytest.mark.parametrize("name", ["adaftr", "multitask"])
def test_fit_gives_finite_losses_and_every_metric(name):
  config = tiny_config(f"model.name={name}")
  columns, schema = synthetic_columns(config, 1024)
  train = in_memory_dataset(columns, schema, 128, training=True)
  model = models.compile_model(models.build_model(config, schema), config)
  history = model.fit(train, validation_data=train, epochs=2, verbose=0)
  expected = EXPECTED_METRICS | (CONTRASTIVE_METRICS if name == "adaftr" else set())
  expected |= {"val_" + k for k in expected}
  assert expected <= set(history.history), sorted(history.history)
  for key, values in history.history.items():
    assert np.all(np.isfinite(values)), (key, values)


@pytest.mark.slow  # 3 epochs of fit (~4 s)
@pytest.mark.parametrize("items", [
    ["loss.relatedness_signal=contrastive"],
    ["loss.relatedness_signal=transfer_gate"],
    ["loss.relatedness_signal=transfer_gate", "model.relatedness_units=()",
     "loss.gate_field_share=0.03"]])   # the pruned gate, in fit's graph
def test_tau_stays_within_bounds_after_training(items):
  config = tiny_config(*PAPER_READING, *items, "train.learning_rate=0.05",
                       "loss.tau_min=0.1", "loss.tau_max=0.5",
                       "loss.contrastive_weight=5.0")
  columns, schema = synthetic_columns(config, 1024)
  train = in_memory_dataset(columns, schema, 128, training=True)
  model = models.compile_model(models.build_model(config, schema), config)
  model.fit(train, epochs=3, verbose=0)
  features = next(iter(in_memory_dataset(columns, schema, 1024,
                                                    training=False)))[0]
  tau = model(features, training=False)[F.TAU].numpy()
  assert tau.min() >= 0.1 and tau.max() <= 0.5
  assert np.all(np.isfinite(tau))


def test_loss_equals_independent_composition():
  """compute_loss = mean(BCE_ctr + BCE_ctcvr + λ·InfoNCE) from the parts."""
  config = tiny_config(*PAPER_READING, "loss.contrastive_weight=0.3",
                       "loss.symmetric=false")
  batch, schema = synthetic_batch(config, 64)
  model = models.compile_model(models.build_model(config, schema), config)
  loss = model.compute_loss(batch, training=False).numpy()
  features, labels = batch
  outputs = model(features, training=False)
  alignment = model.alignment_task.alignment
  u = alignment.ctr_projection(outputs[F.H_CTR])
  v = alignment.cvr_projection(outputs[F.H_CVR])
  ctr = tf.nn.sigmoid_cross_entropy_with_logits(labels[F.CLICK],
                                                outputs[F.CTR_LOGIT])
  ctcvr = ctcvr_bce(labels[F.CONVERSION], outputs[F.CTR_LOGIT],
                    outputs[F.CVR_LOGIT])
  cl = info_nce(u, v, outputs[F.TAU])
  expected = np.mean(ctr + ctcvr + 0.3 * cl)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_unknown_model_name_is_rejected_before_building():
  config = tiny_config()
  schema = synthetic.synthetic_schema(config.data.synthetic)
  bad = dataclasses.replace(config, model=dataclasses.replace(
      config.model, name="nope"))
  with pytest.raises(ValueError, match="model.name='nope'.*adaftr"):
    models.build_model(bad, schema)


METHODS = [("adaftr", "mmoe"), ("adaftr", "ple"), ("multitask", "mmoe"),
           ("multitask", "ple"), ("multitask", "shared_bottom"),
           ("multitask", "shared_embedding"), ("multitask", "single_task"),
           ("aitm", "mmoe")]


@pytest.mark.parametrize("name, backbone", METHODS)
def test_every_method_trains_and_updates_every_variable(name, backbone):
  config = tiny_config(f"model.name={name}", f"model.backbone={backbone}",
                   "train.learning_rate=0.01")
  batch, schema = synthetic_batch(config)
  model = models.compile_model(models.build_model(config, schema), config)
  model.train_step(batch)
  before = [v.numpy().copy() for v in model.trainable_variables]
  logs = model.train_step(batch)
  assert np.isfinite(float(logs["loss"]))
  unchanged = [v.name for v, old in zip(model.trainable_variables, before)
               if np.array_equal(v.numpy(), old)]
  assert not unchanged, unchanged
  outputs = model(batch[0], training=False)
  assert np.all((outputs[F.CVR].numpy() >= 0) & (outputs[F.CVR].numpy() <= 1))
  # The serving signatures' factored inputs (layers/factored.py) give the
  # same outputs; single-task (two embeddings) keeps the dense path.
  factored = model._factored_inputs(batch[0])
  assert (factored is None) == (backbone == "single_task")
  served = model(batch[0], training=False, factored_inputs=True)
  assert served.keys() == outputs.keys()
  for key in (F.CTR, F.CVR, F.CTCVR):   # probabilities: within 1e-6
    np.testing.assert_allclose(served[key].numpy(), outputs[key].numpy(),
                               rtol=0, atol=1e-6, err_msg=key)
  for key, value in outputs.items():   # logits, representations: rounding
    np.testing.assert_allclose(served[key].numpy(), value.numpy(), rtol=1e-5,
                               atol=1e-6, err_msg=key)


def test_factored_inputs_need_a_built_float32_model():
  config = tiny_config()
  batch, schema = synthetic_batch(config, 16)
  model = models.build_model(config, schema)
  assert model._factored_inputs(batch[0]) is None   # not built yet
  model(batch[0], training=False)
  assert model._factored_inputs(batch[0]) is not None
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    bf16 = models.build_model(config, schema)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  bf16(batch[0], training=False)
  assert bf16._factored_inputs(batch[0]) is None


def test_single_task_shares_no_parameters():
  config = tiny_config("model.name=multitask", "model.backbone=single_task")
  batch, schema = synthetic_batch(config, 32)
  model = models.build_model(config, schema)
  features = batch[0]
  with tf.GradientTape() as tape:
    outputs = model(features, training=True)
    ctr = tf.reduce_sum(outputs[F.CTR_LOGIT])
  grads = tape.gradient(ctr, model.trainable_variables)
  touched = {v.name for v, g in zip(model.trainable_variables, grads)
             if g is not None}
  assert touched and not any("cvr" in n for n in touched), sorted(touched)


def test_aitm_predicts_ctcvr_directly_and_adds_the_calibrator():
  config = tiny_config("model.name=aitm", "loss.aitm_calibration_weight=0.5")
  batch, schema = synthetic_batch(config, 64)
  model = models.compile_model(models.build_model(config, schema), config)
  features, labels = batch
  outputs = model(features, training=False)
  p_ctr, p_cvr = outputs[F.CTR].numpy(), outputs[F.CVR].numpy()
  p_ctcvr = outputs[F.CTCVR].numpy()
  consistent = p_ctcvr <= p_ctr
  np.testing.assert_allclose(p_cvr[consistent],
                             (p_ctcvr / p_ctr)[consistent], rtol=1e-4)
  bce = lambda y, p: -(y * np.log(p) + (1 - y) * np.log(1 - p))
  click, conversion = labels[F.CLICK].numpy(), labels[F.CONVERSION].numpy()
  expected = np.mean(bce(click, p_ctr) + bce(conversion, p_ctcvr)
                     + 0.5 * np.maximum(p_ctcvr - p_ctr, 0))
  np.testing.assert_allclose(model.compute_loss(batch).numpy(), expected,
                             rtol=1e-4)


# --- options: mixed precision, XLA ------------------------------------------

@pytest.fixture
def data(tiny_data):
  """(data_dir, schema) of the tiny preset's synthetic data."""
  return tiny_data, F.FeatureSchema.load(tiny_data)


def _batch(data, size=64):
  data_dir, schema = data
  return next(iter(reader.make_dataset(data_dir, "train", schema, size,
                                          training=False)))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_losses_in_float32(data, policy):
  config = overrides.apply(
      experiments.get_preset("tiny"), [f"runtime.mixed_precision={policy}"])
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    model = models.compile_model(models.build_model(config, data[1]), config)
    batch = _batch(data)
    outputs = model(batch[0])
    before = [v.numpy() for v in model.trainable_variables]
    model.train_step(batch)  # eager: builds, scales the loss if float16
    loss = model.compute_loss(batch, training=True)
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)
  assert outputs[F.H_CTR].dtype == tf.as_dtype(policy.split("_")[1])
  assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
  if policy == "mixed_float16":
    assert isinstance(model.optimizer,
                      tf_keras.mixed_precision.LossScaleOptimizer)
  after = model.trainable_variables
  assert all(v.dtype == tf.float32 for v in after)
  assert sum(not np.array_equal(b, a.numpy())
             for b, a in zip(before, after)) > len(after) // 2


@pytest.mark.slow  # one XLA compilation per case (~10-15 s each)
@pytest.mark.parametrize("items", [   # MMoE + InfoNCE: test_train_lib's job
    ("model.backbone=ple", "loss.relatedness_signal=transfer_gate",
     "loss.one_way=true", "loss.negatives=random_one"),
    ("model.backbone=shared_embedding",
     "loss.relatedness_signal=meta_gradient"),
    ("model.name=aitm", "model.backbone=shared_bottom")])
def test_xla_trains_other_backbones_and_objectives(items):
  config = tiny_config("runtime.jit_compile=true", *items)
  columns, schema = synthetic_columns(config, 512)
  train = in_memory_dataset(columns, schema, 128, training=True)
  model = models.compile_model(models.build_model(config, schema), config)
  history = model.fit(train, validation_data=train, epochs=1, verbose=0)
  assert model._jit_compile is True  # pylint: disable=protected-access
  for key in ("loss", "val_loss", "val_ctcvr_auc"):
    assert np.all(np.isfinite(history.history[key])), (key, history.history)


def test_jit_compile_reaches_keras(data):
  config = overrides.apply(experiments.get_preset("tiny"),
                                      ["runtime.jit_compile=true"])
  model = models.compile_model(models.build_model(config, data[1]), config)
  assert model._jit_compile is True  # pylint: disable=protected-access


def _xla_and_plain_steps(config, batch, schema):
  """[(model, train step)] without, then with XLA, on the same initial weights
  (variables and optimizer slots created eagerly, as the training job does)."""
  built = []
  for jit in (False, True):
    model = models.compile_model(models.build_model(config, schema), config)
    with tf.GradientTape():
      model.compute_loss(batch, training=True)
    model.optimizer.build(model.trainable_variables)
    if built:
      for mine, theirs in zip(model.trainable_variables,
                              built[0][0].trainable_variables):
        mine.assign(theirs)
    built.append((model, tf.function(model.train_step, jit_compile=jit)))
  return built


@pytest.mark.slow  # one XLA compilation (~5 s)
def test_the_xla_train_step_takes_every_input_as_a_parameter():
  """No input of the compiled AdaFTR step is a compile-time constant: a
  constant weight keys XLA's compilation cache by its value, so the step was
  recompiled on every call (issue 16: ~100x slower than without XLA)."""
  config = tiny_config()
  batch, schema = synthetic_batch(config, 64)
  (_, _), (_, step) = _xla_and_plain_steps(config, batch, schema)
  assert entry_parameters(step, batch) == inputs(step, batch)


@pytest.mark.slow  # one XLA compilation per case (~5-8 s)
# Adam with its moving average (the dense path Adagrad shares, plus the
# averages) and LazyAdam (the sparse path); ~7 s each.
@pytest.mark.parametrize("optimizer,ema", [("adam", 0.9), ("lazy_adam", 0.0)])
def test_xla_train_steps_equal_the_plain_ones_on_the_same_weights(optimizer,
                                                                  ema):
  """Under XLA Adam and Adagrad get the embedding table's gradient dense
  (optimizers.minimize: no tf.unique in the compiled step), LazyAdam keeps it
  sparse: same losses, weights and slots (moving averages included) after two
  steps as without XLA, to float tolerance."""
  config = tiny_config(f"train.optimizer={optimizer}",
                       f"train.ema_momentum={ema}")
  batch, schema = synthetic_batch(config, 128)
  results = []
  for jit, (model, step) in zip((False, True),
                                _xla_and_plain_steps(config, batch, schema)):
    if jit:
      hlo = step.experimental_get_compiler_ir(batch)(stage="hlo")
      assert ('op_type="Unique"' in hlo) == (optimizer == "lazy_adam")
    logs = [step(batch) for _ in range(2)]
    results.append(([float(l["loss"]) for l in logs],
                     [v.numpy() for v in model.trainable_variables],
                     [v.numpy() for v in model.optimizer.variables]))
  (plain_loss, plain_weights, plain_slots), (loss, weights, slots) = results
  np.testing.assert_allclose(loss, plain_loss, rtol=1e-5)
  assert len(weights) == len(plain_weights) > 20
  assert len(slots) == len(plain_slots) > len(weights)
  for a, b in zip(weights + slots, plain_weights + plain_slots):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("items", [
    [], ["loss.relatedness_input=towers_detached"],
    ["loss.relatedness_signal=transfer_gate", "loss.gate_quantile=0.25",
     "model.relatedness_units=[]"]])
def test_instance_tau_is_the_inference_tau_and_reads_only_what_f_reads(items):
  """`instance_tau` (a teacher's forward pass) equals the tau of the model's
  inference call; when f reads the embeddings it reads no backbone or tower
  variable, when f reads the towers it runs the full forward pass."""
  config = tiny_config(*PAPER_READING, "model.backbone=mmoe", *items)
  (features, _), schema = synthetic_batch(config, 64)
  model = models.build_model(config, schema)
  expected = model(features, training=False)[F.TAU].numpy()
  with tf.GradientTape() as tape:
    tau = model.instance_tau(features)
  np.testing.assert_allclose(tau.numpy(), expected, rtol=1e-6)
  assert tau.shape == (64,) and expected.std() > 0
  read = {id(v) for v in tape.watched_variables()}
  towers = {id(v) for v in model.backbone.trainable_variables
            + model.heads.trainable_variables}
  relatedness = model.alignment_task.alignment.relatedness.trainable_variables
  assert all(id(v) in read for v in relatedness)
  assert bool(read & towers) == ("towers_detached" in " ".join(items))


def test_instance_tau_needs_a_tau_of_the_models_own():
  config = tiny_config(*PAPER_READING, "loss.tau_source=oracle")
  (features, _), schema = synthetic_batch(config, 8)
  with pytest.raises(ValueError, match="loss.tau_source=network"):
    models.build_model(config, schema).instance_tau(features)


def test_a_held_out_fold_adds_nothing_to_the_training_loss():
  """train.folds=2, holdout_fold=k: the training loss is the per-example
  losses of the rows outside fold k (a direct computation), over the whole
  batch; evaluation and a model without folds count every row."""
  from adaftr_tf import folds
  config = tiny_config("model.name=multitask", "model.backbone=mmoe")
  batch, schema = synthetic_batch(config, 128)
  features, labels = batch
  fold = folds.row_fold(features, 2).numpy()
  assert 20 < fold.sum() < 108
  full = models.compile_model(models.build_model(config, schema), config)
  full.compute_loss(batch, training=False)   # builds every variable
  first, second = full.task.plain_losses(
      labels, full(features, training=False))
  per_example = (first + second).numpy()
  regularization = float(tf.add_n(full.losses)) if full.losses else 0.0
  for k in (0, 1):
    held = overrides.apply(config, ["train.folds=2",
                                    f"train.holdout_fold={k}"])
    model = models.compile_model(models.build_model(held, schema), held)
    model.compute_loss(batch, training=False)
    model.set_weights(full.get_weights())
    expected = per_example[fold != k].sum() / 128 + regularization
    assert float(model.compute_loss(batch, training=True)) == pytest.approx(
        expected, rel=1e-5)
    assert float(model.compute_loss(batch, training=False)) == pytest.approx(
        per_example.mean() + regularization, rel=1e-5)
  assert float(full.compute_loss(batch, training=True)) == pytest.approx(
      per_example.mean() + regularization, rel=1e-5)
