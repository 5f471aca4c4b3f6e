"""A training job that pauses for good after a step checkpoint (fault drills).

  python tests/helpers/paused_training.py PAUSE_AFTER MODEL_DIR DATA_DIR \
      OVERRIDE...

Trains the `tiny` preset with the overrides, like `python -m pipelines.train`,
plus `PauseAfterCheckpoint`: once a step checkpoint at a global step >=
PAUSE_AFTER exists it prints `PAUSED_MESSAGE <step>` and sleeps until killed,
so a test can SIGKILL it at a known point.
"""

import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

PAUSED_MESSAGE = "paused after checkpoint at step"


class PauseAfterCheckpoint(tf_keras.callbacks.Callback):
  """Sleeps forever once the newest step checkpoint is at >= `step`."""

  def __init__(self, steps_dir: str, step: int):
    super().__init__()
    self.steps_dir, self.step = steps_dir, step

  def on_train_batch_end(self, batch, logs=None):
    latest = tf.train.latest_checkpoint(self.steps_dir)
    saved = int(latest.rsplit("-", 1)[1]) if latest else 0
    if saved >= self.step:
      print(f"{PAUSED_MESSAGE} {saved}", flush=True)
      while True:
        time.sleep(60)


def main(argv):
  from adaftr_tf import experiments
  from pipelines.training import resume
  from pipelines.training import train_lib
  pause_after, model_dir, data_dir, *items = argv[1:]
  config = experiments.config_of("tiny", items)
  pause = PauseAfterCheckpoint(os.path.join(model_dir, resume.STEPS_DIR),
                               int(pause_after))
  train_lib.train(config, model_dir, data_dir, verbose=0,
                  extra_callbacks=[pause])


if __name__ == "__main__":
  main(sys.argv)
