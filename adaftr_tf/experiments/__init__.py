"""THE registry of named experiments: presets, benchmarked methods, their
tuned knobs and sweep spaces, and named groups of methods (in the spirit of
Model Garden's `exp_factory`).

* A **preset** is a named function returning a complete `Config`: what
  `--preset=NAME` trains (`get_preset`, presets.py).
* A **method** is a named function `Config -> Config` that turns a preset
  into one of the benchmarked methods (methods.py: baselines, AdaFTR and its
  ablations; relatedness.py: the relatedness experiments; census.py: the
  census-income experiment on real data);
  `method_config(name, base)` applies its tuned knobs, then the method.
* `TUNED` holds the sweep winners, `SWEEP_SPACES` what the sweep draws from
  (tuning.py); a **group** names a set of methods for the benchmark.

Adding a method: one function decorated with `@method(name, space, ...)` in
methods.py or relatedness.py (plus its layer or objective if new) and a test.
"""

from adaftr_tf.experiments.registry import Method
from adaftr_tf.experiments.registry import config_of
from adaftr_tf.experiments.registry import get_method
from adaftr_tf.experiments.registry import get_preset
from adaftr_tf.experiments.registry import group
from adaftr_tf.experiments.registry import group_members
from adaftr_tf.experiments.registry import group_names
from adaftr_tf.experiments.registry import method
from adaftr_tf.experiments.registry import method_config
from adaftr_tf.experiments.registry import method_names
from adaftr_tf.experiments.registry import preset
from adaftr_tf.experiments.registry import preset_names
from adaftr_tf.experiments.registry import replace_fields
from adaftr_tf.experiments.registry import sweep_space
from adaftr_tf.experiments.registry import tuned_overrides
from adaftr_tf.experiments.tuning import SHARED_SPACE
from adaftr_tf.experiments.tuning import SWEEP_SPACES
from adaftr_tf.experiments.tuning import TUNED

# The definitions register themselves on import, in this order.
from adaftr_tf.experiments import presets  # noqa: E402,F401  isort: skip
from adaftr_tf.experiments import methods  # noqa: E402,F401  isort: skip
from adaftr_tf.experiments import relatedness  # noqa: E402,F401  isort: skip
from adaftr_tf.experiments import census  # noqa: E402,F401  isort: skip

__all__ = ["Method", "SHARED_SPACE", "SWEEP_SPACES", "TUNED", "config_of",
           "get_method", "get_preset", "group", "group_members", "group_names",
           "method", "method_config", "method_names", "preset",
           "preset_names", "replace_fields", "sweep_space", "tuned_overrides"]
