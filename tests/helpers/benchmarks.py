"""Speed-benchmark settings for the plan and worker tests."""

from pipelines.benchmarks.speed import plan as plan_lib


def speed_settings(**kwargs):
  """`plan_lib.Settings` of a small plan; `kwargs` replace fields."""
  values = dict(preset="demo", overrides=("train.batch_size=2048",), steps=5,
                warmup=3, input_steps=7, reference_batches=2,
                steps_per_execution=4, variants=("spe1", "jit"),
                prototypes=("keras_auc", "no_metrics"),
                scale_steps=3, scale_warmup=1, scale_steps_per_execution=2)
  values.update(kwargs)
  return plan_lib.Settings(**values)
