"""The benchmarked methods: baselines, then AdaFTR and its ablations.

Each is a named function `Config -> Config` applied to a preset, registered
with the sweep space and tuned knobs it uses (tuning.py).
"""

from adaftr_tf.config import Config
from adaftr_tf.experiments.registry import group
from adaftr_tf.experiments.registry import method
from adaftr_tf.experiments.registry import method_names
from adaftr_tf.experiments.registry import replace_fields


# The paper reading of AdaFTR (the relatedness network trained through the
# in-batch InfoNCE): what every `adaftr*` method measures, whatever the
# library's default relatedness signal and negatives are.
PAPER_READING = {"relatedness_signal": "contrastive", "negatives": "in_batch"}


def _multitask(c: Config, backbone: str) -> Config:
  return replace_fields(c, model={"name": "multitask", "backbone": backbone})


def paper_reading(c: Config, **loss) -> Config:
  """AdaFTR, the paper reading, with `loss` fields changed on top."""
  return replace_fields(c, model={"name": "adaftr"},
                        loss={**PAPER_READING, **loss})


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
  return paper_reading(c, temperature_mode="fixed")


@method("adaftr_global_tau", "adaftr", tuned_as="adaftr")
def adaftr_global_tau(c: Config) -> Config:
  return paper_reading(c, temperature_mode="global")


@method("adaftr", "adaftr")
def adaftr(c: Config) -> Config:
  return paper_reading(c, temperature_mode="instance")


@method("adaftr_gradient_agreement", "adaftr", tuned_as="adaftr")
def adaftr_gradient_agreement(c: Config) -> Config:
  return paper_reading(c, relatedness_signal="gradient_agreement")


@method("adaftr_random_negative", "adaftr", tuned_as="adaftr")
def adaftr_random_negative(c: Config) -> Config:
  return paper_reading(c, negatives="random_one")


@method("adaftr_tower_input", "adaftr", tuned_as="adaftr")
def adaftr_tower_input(c: Config) -> Config:
  return paper_reading(c, relatedness_input="towers_detached")


# The benchmark's default set: every method above.
group("core", method_names())
