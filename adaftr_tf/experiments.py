"""THE registry of named experiments: presets, benchmark methods, tuned knobs,
sweep spaces (in the spirit of Model Garden's `exp_factory`).

* A **preset** is a named function returning a complete `Config`: what
  `--preset=NAME` trains (`get_preset`).
* A **method** is a named function `Config -> Config` that turns a preset into
  one of the benchmarked methods (a baseline, AdaFTR or an ablation);
  `method_config(name, base)` applies its tuned knobs, then the method itself.
* `TUNED` holds each method family's sweep winner (override strings, chosen on
  the validation split by `pipelines.sweep`); `SWEEP_SPACES` what the sweep
  draws from.

Adding a method: one function decorated with `@method(name, family=...)`
here (plus its layer or objective if new) and a test.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from adaftr_tf import choices
from adaftr_tf import overrides
from adaftr_tf.config import Config
from adaftr_tf.config import ConfigError
from adaftr_tf.config import DataConfig
from adaftr_tf.config import LossConfig
from adaftr_tf.config import ModelConfig
from adaftr_tf.config import SyntheticConfig
from adaftr_tf.config import TrainConfig

_PRESETS: dict[str, Callable[[], Config]] = {}


@dataclasses.dataclass(frozen=True)
class Method:
  """A benchmarked method.

  Attributes:
    name: its registry name.
    define: `Config -> Config`, the method applied to a preset.
    space: its key of SWEEP_SPACES.
    tuned_as: its key of TUNED (AdaFTR's ablations start from AdaFTR's).
  """

  name: str
  define: Callable[[Config], Config]
  space: str
  tuned_as: str


_METHODS: dict[str, Method] = {}


def preset(name: str):
  """Registers a `() -> Config` function as the preset `name`."""
  def register(fn: Callable[[], Config]) -> Callable[[], Config]:
    if name in _PRESETS:
      raise ValueError(f"preset {name!r} is registered twice")
    _PRESETS[name] = fn
    return fn
  return register


def method(name: str, space: str, tuned_as: str | None = None):
  """Registers a `Config -> Config` function as the method `name`."""
  def register(fn: Callable[[Config], Config]) -> Callable[[Config], Config]:
    if name in _METHODS:
      raise ValueError(f"method {name!r} is registered twice")
    _METHODS[name] = Method(name, fn, space, tuned_as or name)
    return fn
  return register


def preset_names() -> list[str]:
  return sorted(_PRESETS)


def method_names() -> list[str]:
  """The methods in registration order (baselines first, then AdaFTR's)."""
  return list(_METHODS)


def get_preset(name: str) -> Config:
  """The named preset; ConfigError lists the valid names."""
  if name not in _PRESETS:
    raise ConfigError(f"unknown preset {name!r}; valid presets: "
                      f"{preset_names()}")
  return _PRESETS[name]()


def config_of(preset_name: str, items: Sequence[str] = ()) -> Config:
  """The validated config of a preset plus `key=value` overrides.

  Raises:
    ConfigError: an unknown preset or key, a bad value, a contradiction.
  """
  return overrides.apply(get_preset(preset_name), items).validate()


def get_method(name: str) -> Method:
  """The named method; ConfigError lists the valid names."""
  if name not in _METHODS:
    raise ConfigError(f"unknown method {name!r}; valid methods: "
                      f"{method_names()}")
  return _METHODS[name]


def tuned_overrides(name: str) -> list[str]:
  """The sweep winner's overrides for method `name` ([] when none)."""
  return list(TUNED.get(get_method(name).tuned_as, ()))


def method_config(name: str, base: Config, tuned: bool = True) -> Config:
  """`base`, then the method's tuned knobs (if `tuned`), then the method.

  The definition comes last, so what a method is (e.g. an ablation's switch)
  wins over a knob its family's winner set.
  """
  config = overrides.apply(base, tuned_overrides(name) if tuned else [])
  return get_method(name).define(config)


def sweep_space(name: str) -> dict[str, list[str]]:
  """The knobs a sweep of method `name` draws from (its own + shared)."""
  return {**SHARED_SPACE, **SWEEP_SPACES[get_method(name).space]}


def replace_fields(config: Config, **sections) -> Config:
  """`config` with fields replaced per section, e.g.
  `replace_fields(c, model={"name": "aitm"}, train={"seed": 1})`."""
  return dataclasses.replace(config, **{
      key: dataclasses.replace(getattr(config, key), **fields)
      for key, fields in sections.items()})


# --- presets -----------------------------------------------------------------

@preset("demo")
def demo() -> Config:
  """`make demo`: AdaFTR (MMoE) on the default synthetic log, 3 epochs."""
  return Config()


@preset("demo_mmoe")
def demo_mmoe() -> Config:
  """The demo's data and backbone without the alignment (the reference)."""
  return replace_fields(demo(), model={"name": "multitask"})


@preset("tiny")
def tiny() -> Config:
  """Seconds-long run for tests: a small synthetic log and network."""
  return Config(
      data=DataConfig(
          synthetic=SyntheticConfig(num_train=4096, num_valid=1024,
                                    num_test=1024, num_categorical=4,
                                    num_numerical=6, vocab_size=50,
                                    click_rate=0.2, cvr_rate=0.3,
                                    num_shards=2),
          shuffle_buffer=4096),
      model=ModelConfig(embedding_dim=4, num_experts=2, expert_units=(16,),
                        tower_units=(16, 8), projection_dim=8,
                        projection_hidden=8, relatedness_units=(8,)),
      train=TrainConfig(batch_size=128, eval_batch_size=512, epochs=1,
                        learning_rate=0.01, steps_per_execution=4))


@preset("bench")
def bench() -> Config:
  """The quality benchmark's world (pipelines.benchmark_quality).

  Sparse conversions (5% clicks, 10% post-click purchases: ~0.5% of
  impressions convert) and planted relatedness r(x) spread over [0, 1];
  smaller than `demo` so many methods x seeds fit in one sitting on a CPU.
  """
  return Config(
      data=DataConfig(synthetic=SyntheticConfig(num_train=200_000,
                                                num_valid=40_000,
                                                num_test=100_000)),
      train=TrainConfig(epochs=2))


@preset("aliexpress")
def aliexpress() -> Config:
  """AliExpress (one country, ~10-30M impressions): converted data only."""
  return Config(
      data=DataConfig(source="files", shuffle_buffer=200_000),
      model=ModelConfig(embedding_dim=16, num_experts=8,
                        expert_units=(256, 128), tower_units=(64, 32),
                        dropout=0.2),
      loss=LossConfig(contrastive_weight=0.1),
      train=TrainConfig(batch_size=2048, eval_batch_size=16384, epochs=10,
                        learning_rate=0.001, early_stopping_patience=2))


@preset("aliccp")
def aliccp() -> Config:
  """Ali-CCP (~38M train impressions, long behaviour lists): converted data."""
  return Config(
      data=DataConfig(source="files", shuffle_buffer=200_000),
      model=ModelConfig(embedding_dim=16, num_experts=4,
                        expert_units=(256, 128), tower_units=(128, 64),
                        dropout=0.1, embedding_l2=1e-6),
      loss=LossConfig(contrastive_weight=0.1),
      train=TrainConfig(batch_size=2048, eval_batch_size=16384, epochs=5,
                        learning_rate=0.001, early_stopping_patience=1))


# --- methods: baselines, then AdaFTR and its ablations ------------------------

def _multitask(c: Config, backbone: str) -> Config:
  return replace_fields(c, model={"name": "multitask", "backbone": backbone})


@method("single_task", "bottom")
def single_task(c: Config) -> Config:
  """Separate embeddings and MLPs per task: no shared parameter."""
  return _multitask(c, "single_task")


@method("shared_bottom", "bottom")
def shared_bottom(c: Config) -> Config:
  return _multitask(c, "shared_bottom")


@method("esmm", "bottom")
def esmm(c: Config) -> Config:
  """Shared embeddings, one MLP per task, entire-space CTCVR loss."""
  return _multitask(c, "shared_embedding")


@method("mmoe", "mixture")
def mmoe(c: Config) -> Config:
  return _multitask(c, "mmoe")


@method("ple", "ple")
def ple(c: Config) -> Config:
  return _multitask(c, "ple")


@method("aitm", "aitm")
def aitm(c: Config) -> Config:
  """AIT unit from the CTR to the CVR tower + behavioural calibrator."""
  return replace_fields(c, model={"name": "aitm", "backbone": "mmoe"})


@method("adaftr_fixed_tau", "adaftr", tuned_as="adaftr")
def adaftr_fixed_tau(c: Config) -> Config:
  return replace_fields(c, model={"name": "adaftr"}, loss={"temperature_mode": "fixed"})


@method("adaftr_global_tau", "adaftr", tuned_as="adaftr")
def adaftr_global_tau(c: Config) -> Config:
  return replace_fields(c, model={"name": "adaftr"},
               loss={"temperature_mode": "global"})


@method("adaftr", "adaftr")
def adaftr(c: Config) -> Config:
  return replace_fields(c, model={"name": "adaftr"},
               loss={"temperature_mode": "instance"})


@method("adaftr_gradient_agreement", "adaftr", tuned_as="adaftr")
def adaftr_gradient_agreement(c: Config) -> Config:
  return replace_fields(c, model={"name": "adaftr"},
               loss={"relatedness_signal": "gradient_agreement"})


@method("adaftr_random_negative", "adaftr", tuned_as="adaftr")
def adaftr_random_negative(c: Config) -> Config:
  return replace_fields(c, model={"name": "adaftr"}, loss={"negatives": "random_one"})


@method("adaftr_tower_input", "adaftr", tuned_as="adaftr")
def adaftr_tower_input(c: Config) -> Config:
  return replace_fields(c, model={"name": "adaftr"},
               loss={"relatedness_input": "towers_detached"})


# --- tuned winners and sweep spaces (data) -------------------------------------

# Method -> the winning trial of an equal-budget `pipelines.sweep` on `bench`
# (4 trials, selected on the validation split's mean CTR/CVR/CTCVR AUC; the
# test split never read). Trial 1 is the method as defined, so a method whose
# definition won has no entry (shared_bottom, esmm, aitm). Trials and
# scores: docs/results/sweep.md.
TUNED: dict[str, tuple[str, ...]] = {
    "single_task": ("model.embedding_l2=1e-6", "model.expert_units=64,32",
                    "train.learning_rate=0.001"),
    "mmoe": ("model.embedding_l2=1e-5", "model.expert_units=64,32",
                "model.num_experts=4", "train.learning_rate=0.002"),
    "ple": ("model.embedding_l2=1e-5", "model.expert_units=128,64",
            "model.ple_levels=1", "model.ple_shared_experts=2",
            "train.learning_rate=0.001"),
    "adaftr": ("loss.contrastive_weight=0.1", "model.projection_dim=32",
               "loss.relatedness_input=embeddings", "loss.symmetric=true",
               "loss.tau_max=1.0", "loss.tau_min=0.02",
               "model.embedding_l2=0.0", "model.tower_units=32,32",
               "train.learning_rate=0.002"),
}

SHARED_SPACE = {
    "train.learning_rate": ["0.001", "0.002", "0.004"],
    "model.embedding_l2": ["0.0", "1e-6", "1e-5"],
}
# The main knobs of each family; AdaFTR's own: lambda, tau range, what the
# relatedness network reads, projection size, symmetry, tower sizes.
SWEEP_SPACES = {
    "adaftr": {
        "loss.contrastive_weight": ["0.01", "0.03", "0.1", "0.3"],
        "loss.tau_min": ["0.02", "0.05", "0.1"],
        "loss.tau_max": ["0.5", "1.0", "2.0"],
        "loss.relatedness_input": list(choices.options(choices.RelatednessInput)),
        "model.projection_dim": ["8", "16", "32"],
        "loss.symmetric": ["true", "false"],
        "model.tower_units": ["64,32", "64,16", "32,32"],
    },
    "mixture": {
        "model.num_experts": ["2", "4", "8"],
        "model.expert_units": ["128,64", "64,32", "256,64"],
    },
    "bottom": {"model.expert_units": ["128,64", "64,32", "256,64"]},
    "ple": {"model.ple_levels": ["1", "2"],
            "model.ple_shared_experts": ["1", "2"],
            "model.expert_units": ["128,64", "64,32"]},
    "aitm": {"loss.aitm_calibration_weight": ["0.1", "0.3", "0.6", "1.0"],
             "model.num_experts": ["2", "4", "8"]},
}
