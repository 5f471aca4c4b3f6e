"""Train a CTR/CVR model: `python -m pipelines.train --preset=NAME --model_dir=DIR`.

  --preset     a named config (see adaftr_tf.config.PRESETS): demo, tiny, ...
  --model_dir  where checkpoints, TensorBoard logs and config.json go
  --data_dir   converted data, or where synthetic data is generated when missing
               (default: data/synthetic-<hash of the synthetic config>)
  --override   key=value, repeatable: e.g. --override=loss.tau_min=0.05

Every flag and override is validated before any data is read or generated.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from pipelines import cli  # noqa: E402

import adaftr_tf  # noqa: E402,F401
from adaftr_tf import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "demo", "Config preset name.")
cli.define_string("model_dir", None, "Output directory of the run.")
cli.define_string("data_dir", None, "Data directory (see module docstring).")
cli.define_multi_string("override", [], "Config override key=value.")
cli.define_integer("verbose", 1, "Keras fit verbosity (0, 1 or 2).")


def config_from_flags() -> config_lib.Config:
  """The validated config named by --preset and --override."""
  config = config_lib.get_preset(FLAGS.preset)
  config = config_lib.apply_overrides(config, FLAGS.override)
  return config.validate()


def main(argv):
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.model_dir:
    raise app.UsageError("--model_dir is required")
  config = config_from_flags()
  from pipelines import training  # heavy imports after validation
  result = training.train(config, FLAGS.model_dir, FLAGS.data_dir,
                          verbose=FLAGS.verbose)
  valid = result["valid"]
  print(f"best epoch {valid['best_epoch']}: valid CTR AUC "
        f"{valid['ctr_auc']:.4f}, CVR AUC {valid['cvr_auc']:.4f}, "
        f"CTCVR AUC {valid['ctcvr_auc']:.4f}; model dir {FLAGS.model_dir}")


if __name__ == "__main__":
  app.run(main)
