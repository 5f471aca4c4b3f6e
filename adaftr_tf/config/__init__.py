"""Run configuration: frozen dataclasses, one validator per section.

`Config` (run.py) has five sections: `data`, `model`, `train`, `runtime`
(sections.py) and `loss` (loss.py); checks.py holds `ConfigError` and the
checks they share. Choice fields have the Literal types of
`adaftr_tf.choices`. Named configs: adaftr_tf/experiments/; `key=value`
overrides: overrides.py. A run's final config is written as JSON next to its
checkpoints and into the SavedModel's assets.
"""

from adaftr_tf.config.checks import ConfigError
from adaftr_tf.config.loss import LossConfig
from adaftr_tf.config.run import Config
from adaftr_tf.config.sections import DataConfig
from adaftr_tf.config.sections import ModelConfig
from adaftr_tf.config.sections import RuntimeConfig
from adaftr_tf.config.sections import SyntheticConfig
from adaftr_tf.config.sections import TrainConfig

__all__ = ["Config", "ConfigError", "DataConfig", "LossConfig", "ModelConfig",
           "RuntimeConfig", "SyntheticConfig", "TrainConfig"]
