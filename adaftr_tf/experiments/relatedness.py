"""The relatedness experiments (does adaptive relatedness help?).

* Presets: `relatedness` is the `bench` world with 1M-impression validation
  and test splits (CVR AUC standard error ~0.004, ../shared/EXPERIMENTS.md);
  `bench_large` also trains on 1.2M impressions (~6k conversions).
* Per backbone B (ESMM, shared-bottom, MMoE, PLE): `adaftr_B` is AdaFTR as a
  plug-in on B (the relatedness network trained through InfoNCE), and
  `adaftr_B_<source>` the same alignment with tau from a control source
  (loss.tau_source: the planted relatedness, its reverse, its shuffle, or a
  field hash; training only), `adaftr_B_<signal>` with the relatedness
  network trained by a learned signal (loss.relatedness_signal:
  transfer_gate, meta_gradient), `adaftr_B_transfer_gate_embeddings` with the gate's
  probe also training the shared embeddings (relatedness_stop_gradient off,
  so the slope it learns is written into what the towers read),
  `adaftr_B_transfer_gate_delayed` with the InfoNCE term off for the first
  half of the training steps (loss.alignment_start=0.5: the gate learns
  tau before the alignment uses it), `adaftr_B_transfer_gate_linear`: the
  library default's form (one random negative) with a linear relatedness
  network (model.relatedness_units=(): f = Dense(1) on the embeddings,
  fewer weights to overfit its probe),
  `adaftr_B_transfer_gate_quantile_<q>` (GATE_QUANTILES): the default's
  form with a steeper map from slopes to tau (loss.gate_quantile=q: e.g. at
  0.25 the top and bottom quarter of each batch's slopes at the bounds, as
  the oracle puts the instances of r near 0 and 1),
  `adaftr_B_transfer_gate_linear_quantile_0.25` the linear network with that
  map, and `adaftr_B_transfer_gate_quantile_0.25_gate_first` that map with
  the InfoNCE term off for the first GATE_FIRST of the training steps (with
  train.epochs=5, the gate learns for one epoch before four aligned ones);
  `..._linear_quantile_0.25_pruned` that linear gate's tau read, in the
  same run, through the fields carrying at least PRUNED_FIELD_SHARE of its
  logit's variance in the batch (loss.gate_field_share; one run, no
  teacher).
  `adaftr_B_gate_teacher`: the oracle's form with tau from the same seed's
  trained `adaftr_B_transfer_gate_linear_quantile_0.25` run, frozen
  (loss.tau_source=teacher; the benchmark trains the teacher first): a
  learned signal known from the first step, at the cost of a second run;
  `adaftr_B_gate_teacher_random_negative` the same with one random negative
  (the cheaper step of the library default's form);
  `adaftr_B_gate_teacher_ensemble_<ENSEMBLE_SEEDS>` tau the mean of that
  teacher's runs of ENSEMBLE_SEEDS seeds (its own and the next ones).
  `adaftr_B_gate_teacher_crossfit_<K>` (CROSS_FIT_FOLDS): the gate teacher
  cross-fitted, its K teachers `..._quantile_0.25_fold<k>of<K>` each
  trained without the rows of fold k (train.folds, adaftr_tf/folds.py), so
  no training row's tau comes from a teacher that learned from its label;
  `..._crossfit_<K>_random_negative` the same with one random negative.
  `adaftr_B_gate_teacher_pruned` (and `..._crossfit_K_pruned`,
  `..._pruned_random_negative` with one random negative): the gate
  teacher read through the fields carrying at least PRUNED_FIELD_SHARE of
  its logit's variance in the batch (loss.teacher_field_share,
  adaftr_tf/tasks/teacher_fields.py): the small weights the linear gate
  learns on fields outside r are consistent per instance, and dropped.
  Each is
  paired with B in the benchmark and starts from B's tuned knobs, so the pair
  differs by the alignment alone.
* `B_click_gate` is B whose CVR logit adds the stop-gradient CTR logit with
  a learned instance-specific slope (model.click_gate): the transfer gate's
  estimate of relatedness used in prediction rather than as a temperature.
* Partial knowledge of r, `adaftr_B_noisy_oracle_<w>` (NOISE_LEVELS): the
  oracle of r mixed with a field hash of weight w (how well must a learned
  signal know r before the alignment pays?).
* Alignment forms with the oracle tau, `adaftr_B_oracle_<form>` (FORMS):
  one-way (the CTR side behind a stop-gradient), one InfoNCE direction, one
  random negative, lambda 0.03 or 0.3 instead of 0.1, tau in [0.2, 1]; the
  same forms with the transfer gate's tau, `adaftr_B_transfer_gate_<form>`.
* Groups: `knowledge_B` (B, the oracle, its noisy versions, the field
  hash), `forms_B` (B, its oracle and the oracle's forms), `gate_forms_B`
  (B, the transfer gate and its forms), `ladder_B` (B, AdaFTR(B), the four controls and the learned
  signals), `plugin` (every B with its AdaFTR(B)), `click_gate` (every B
  with B_click_gate).

The control worlds are the `data.synthetic.relatedness` override (`one`,
`zero`) on any of these presets.
"""

import dataclasses

from adaftr_tf.config import Config
from adaftr_tf.experiments.methods import paper_reading
from adaftr_tf.experiments.registry import get_method
from adaftr_tf.experiments.registry import group
from adaftr_tf.experiments.registry import method
from adaftr_tf.experiments.registry import preset
from adaftr_tf.experiments.registry import replace_fields
from adaftr_tf.experiments.presets import bench

BACKBONES = {"esmm": "shared_embedding", "shared_bottom": "shared_bottom",
             "mmoe": "mmoe", "ple": "ple"}
CONTROL_SOURCES = ("oracle", "anti_oracle", "shuffled_oracle", "field_hash")
LEARNED_SIGNALS = ("transfer_gate", "meta_gradient")
NOISE_LEVELS = (0.25, 0.5, 0.75)
STEEP_QUANTILE = 0.25   # the steeper map the linear and gate-first entries use
GATE_QUANTILES = (STEEP_QUANTILE, 0.4)
GATE_FIRST = 0.2
CROSS_FIT_FOLDS = (2, 3)
ENSEMBLE_SEEDS = 3
# A field share between the linear gate teachers' parts outside r (at most
# 0.012-0.027 each on bench_large's training rows) and inside (0.04-0.29).
PRUNED_FIELD_SHARE = 0.03
FORMS = {"one_way": {"one_way": True}, "asymmetric": {"symmetric": False},
         "random_negative": {"negatives": "random_one"},
         "lambda_0.03": {"contrastive_weight": 0.03},
         "lambda_0.3": {"contrastive_weight": 0.3},
         "tau_min_0.2": {"tau_min": 0.2}}
MILLION = 1_000_000


def _with_synthetic(config: Config, **fields) -> Config:
  return replace_fields(config, data={"synthetic": dataclasses.replace(
      config.data.synthetic, **fields)})


@preset("relatedness")
def relatedness() -> Config:
  """`bench` with 1M-impression validation and test splits."""
  return _with_synthetic(bench(), num_valid=MILLION, num_test=MILLION)


@preset("bench_large")
def bench_large() -> Config:
  """1.2M training impressions (~6k conversions), 1M validation and test."""
  return _with_synthetic(relatedness(), num_train=1_200_000)


def _adaftr_on(backbone: str, **loss):
  """AdaFTR on `backbone`: the paper reading with `loss` changed on top."""
  def define(config: Config) -> Config:
    return paper_reading(replace_fields(
        config, model={"backbone": BACKBONES[backbone]}), **loss)
  return define


def _default_gate_on(backbone: str, **loss):
  """The library default's form on `backbone` (the transfer gate with one
  random negative), with `loss` changed on top."""
  return _adaftr_on(backbone, relatedness_signal="transfer_gate",
                    **FORMS["random_negative"], **loss)


def _linear_gate_on(backbone: str, **loss):
  """The default's form on `backbone` with a linear relatedness network."""
  gate = _default_gate_on(backbone, **loss)
  return lambda config: replace_fields(gate(config),
                                       model={"relatedness_units": ()})


def _held_out(define, folds: int, fold: int):
  """`define` trained without the rows of `fold` of `folds`."""
  return lambda config: replace_fields(
      define(config), train={"folds": folds, "holdout_fold": fold})


def _click_gate_on(backbone: str):
  def define(config: Config) -> Config:
    return replace_fields(config, model={"name": "multitask",
                                         "backbone": BACKBONES[backbone],
                                         "click_gate": True})
  return define


for _base in BACKBONES:
  method(f"{_base}_click_gate", get_method(_base).space, tuned_as=_base,
         baseline=_base)(
      _click_gate_on(_base))
  method(f"adaftr_{_base}", "adaftr", tuned_as=_base, baseline=_base)(
      _adaftr_on(_base, tau_source="network"))
  for _source in CONTROL_SOURCES:
    method(f"adaftr_{_base}_{_source}", "adaftr", tuned_as=_base,
           baseline=_base)(_adaftr_on(_base, tau_source=_source))
  for _signal in LEARNED_SIGNALS:
    method(f"adaftr_{_base}_{_signal}", "adaftr", tuned_as=_base,
           baseline=_base)(_adaftr_on(_base, relatedness_signal=_signal))
  method(f"adaftr_{_base}_transfer_gate_embeddings", "adaftr", tuned_as=_base,
         baseline=_base)(_adaftr_on(_base, relatedness_signal="transfer_gate",
                                    relatedness_stop_gradient=False))
  method(f"adaftr_{_base}_transfer_gate_delayed", "adaftr", tuned_as=_base,
         baseline=_base)(_adaftr_on(_base, relatedness_signal="transfer_gate",
                                    alignment_start=0.5))
  method(f"adaftr_{_base}_transfer_gate_linear", "adaftr", tuned_as=_base,
         baseline=_base)(_linear_gate_on(_base))
  for _quantile in GATE_QUANTILES:
    method(f"adaftr_{_base}_transfer_gate_quantile_{_quantile}", "adaftr",
           tuned_as=_base, baseline=_base)(
               _default_gate_on(_base, gate_quantile=_quantile))
  method(f"adaftr_{_base}_transfer_gate_linear_quantile_{STEEP_QUANTILE}",
         "adaftr", tuned_as=_base, baseline=_base)(
             _linear_gate_on(_base, gate_quantile=STEEP_QUANTILE))
  method(f"adaftr_{_base}_transfer_gate_linear_quantile_{STEEP_QUANTILE}"
         "_pruned", "adaftr", tuned_as=_base, baseline=_base)(
             _linear_gate_on(_base, gate_quantile=STEEP_QUANTILE,
                             gate_field_share=PRUNED_FIELD_SHARE))
  method(f"adaftr_{_base}_transfer_gate_quantile_{STEEP_QUANTILE}_gate_first",
         "adaftr", tuned_as=_base, baseline=_base)(_default_gate_on(
             _base, gate_quantile=STEEP_QUANTILE, alignment_start=GATE_FIRST))
  _teacher = f"adaftr_{_base}_transfer_gate_linear_quantile_{STEEP_QUANTILE}"
  method(f"adaftr_{_base}_gate_teacher", "adaftr", tuned_as=_base,
         baseline=_base, teachers=[_teacher])(
             _adaftr_on(_base, tau_source="teacher"))
  method(f"adaftr_{_base}_gate_teacher_random_negative", "adaftr",
         tuned_as=_base, baseline=_base, teachers=[_teacher])(
             _adaftr_on(_base, tau_source="teacher",
                        **FORMS["random_negative"]))
  for _suffix, _form in (("", {}), ("_random_negative",
                                   FORMS["random_negative"])):
    method(f"adaftr_{_base}_gate_teacher_pruned{_suffix}", "adaftr",
           tuned_as=_base, baseline=_base, teachers=[_teacher])(
               _adaftr_on(_base, tau_source="teacher",
                          teacher_field_share=PRUNED_FIELD_SHARE, **_form))
  method(f"adaftr_{_base}_gate_teacher_ensemble_{ENSEMBLE_SEEDS}", "adaftr",
         tuned_as=_base, baseline=_base, teachers=[_teacher],
         teacher_seeds=ENSEMBLE_SEEDS)(_adaftr_on(_base, tau_source="teacher"))
  for _folds in CROSS_FIT_FOLDS:
    _fold_teachers = [f"{_teacher}_fold{k}of{_folds}" for k in range(_folds)]
    for _fold, _name in enumerate(_fold_teachers):
      method(_name, "adaftr", tuned_as=_base, baseline=_base)(
          _held_out(_linear_gate_on(_base, gate_quantile=STEEP_QUANTILE),
                    _folds, _fold))
    method(f"adaftr_{_base}_gate_teacher_crossfit_{_folds}", "adaftr",
           tuned_as=_base, baseline=_base, teachers=_fold_teachers)(
               _adaftr_on(_base, tau_source="teacher"))
    method(f"adaftr_{_base}_gate_teacher_crossfit_{_folds}_random_negative",
           "adaftr", tuned_as=_base, baseline=_base, teachers=_fold_teachers)(
               _adaftr_on(_base, tau_source="teacher",
                          **FORMS["random_negative"]))
    method(f"adaftr_{_base}_gate_teacher_crossfit_{_folds}_pruned", "adaftr",
           tuned_as=_base, baseline=_base, teachers=_fold_teachers)(
               _adaftr_on(_base, tau_source="teacher",
                          teacher_field_share=PRUNED_FIELD_SHARE))
  for _noise in NOISE_LEVELS:
    method(f"adaftr_{_base}_noisy_oracle_{_noise}", "adaftr", tuned_as=_base,
           baseline=_base)(_adaftr_on(_base, tau_source="noisy_oracle",
                                      oracle_noise=_noise))
  group(f"knowledge_{_base}", [_base, f"adaftr_{_base}_oracle"]
        + [f"adaftr_{_base}_noisy_oracle_{w}" for w in NOISE_LEVELS]
        + [f"adaftr_{_base}_field_hash"])
  for _form, _loss in FORMS.items():
    method(f"adaftr_{_base}_oracle_{_form}", "adaftr", tuned_as=_base,
           baseline=_base)(_adaftr_on(_base, tau_source="oracle", **_loss))
    method(f"adaftr_{_base}_transfer_gate_{_form}", "adaftr", tuned_as=_base,
           baseline=_base)(_adaftr_on(_base, relatedness_signal="transfer_gate",
                                      **_loss))
  group(f"forms_{_base}", [_base, f"adaftr_{_base}_oracle"]
        + [f"adaftr_{_base}_oracle_{form}" for form in FORMS])
  group(f"gate_forms_{_base}", [_base, f"adaftr_{_base}_transfer_gate"]
        + [f"adaftr_{_base}_transfer_gate_{form}" for form in FORMS])
  group(f"ladder_{_base}", [_base, f"adaftr_{_base}"]
        + [f"adaftr_{_base}_{s}" for s in CONTROL_SOURCES + LEARNED_SIGNALS])
group("click_gate", [name for base in BACKBONES
                     for name in (base, f"{base}_click_gate")])
group("plugin", [name for base in BACKBONES
                 for name in (base, f"adaftr_{base}")])
