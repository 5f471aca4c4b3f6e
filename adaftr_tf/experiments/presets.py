"""The presets: named functions returning a complete `Config`.

`demo` is the library's defaults (what `make demo` trains); the others start
from a complete `Config` of their own.
"""

from adaftr_tf.config import Config
from adaftr_tf.config import DataConfig
from adaftr_tf.config import LossConfig
from adaftr_tf.config import ModelConfig
from adaftr_tf.config import SyntheticConfig
from adaftr_tf.config import TrainConfig
from adaftr_tf.experiments.registry import preset
from adaftr_tf.experiments.registry import replace_fields


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
  """Seconds-long run for tests: a small synthetic log and network.

  One step per tf.function call: tracing a multi-step loop costs a test run
  more than its steps do (tests of `steps_per_execution` set their own).
  """
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
                        learning_rate=0.01, steps_per_execution=1))


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


@preset("large_experts")
def large_experts() -> Config:
  """The speed experiment at the default MMoE of MTReclib (the PyTorch
  multi-task library users compare with): embedding 128, 8 experts
  512 -> 256, towers 128 -> 64, dropout 0.2, batch 2048, Adam 1e-3.

  Synthetic data with 16 categorical fields and ONE numerical field, so that
  the experts read (16 + 1) x 128 = 2176 values, as MTReclib's do on
  AliExpress (it maps its 63 numerical values to one 128-wide vector; here
  every numerical field is a field of its own). `multitask`: MTReclib has no
  alignment loss. Re-take the figure with
  `python -m pipelines.benchmark_speed --preset=large_experts ...`.
  """
  return Config(
      data=DataConfig(synthetic=SyntheticConfig(num_categorical=16,
                                                num_numerical=1)),
      model=ModelConfig(name="multitask", embedding_dim=128, num_experts=8,
                        expert_units=(512, 256), tower_units=(128, 64),
                        dropout=0.2),
      train=TrainConfig(batch_size=2048, learning_rate=0.001))


# The real-data presets use lazy Adam: their tables reach millions of ids,
# where dense Adam's every-row update slows the step (README, Performance).
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
                        learning_rate=0.001, early_stopping_patience=2,
                        optimizer="lazy_adam"))


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
                        learning_rate=0.001, early_stopping_patience=1,
                        optimizer="lazy_adam"))
