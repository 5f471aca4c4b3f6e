"""The census-income experiment: real data, two independent tasks.

The UCI census-income test file (99,762 rows, `--format=census` of
`python -m pipelines.convert`: a seeded 60/20/20 train/valid/test split of
its rows; the official training file is not available here) with the MMoE
paper's tasks: income > 50K and marital status "never married". The
objective is `independent` (the data's label relation): one BCE per task
over every row.

* Preset `census`: converted data (`--data_dir`), a small network for ~60k
  training rows, early stopping on the validation mean task AUC.
* Group `census`: single-task, shared-bottom, MMoE, PLE and ESMM's shared
  embedding, AdaFTR on MMoE as the paper reads (relatedness learned through
  InfoNCE), and the transfer gate (the best learned relatedness signal of
  the synthetic ladder) on MMoE and on the shared embedding.
"""

from adaftr_tf.config import Config
from adaftr_tf.config import DataConfig
from adaftr_tf.config import ModelConfig
from adaftr_tf.config import TrainConfig
from adaftr_tf.experiments.registry import group
from adaftr_tf.experiments.registry import preset

CENSUS_METHODS = ("single_task", "shared_bottom", "mmoe", "ple", "esmm",
                  "adaftr_mmoe", "adaftr_mmoe_transfer_gate",
                  "adaftr_esmm_transfer_gate")


@preset("census")
def census() -> Config:
  """Census-income converted with `--format=census` (pass `--data_dir`)."""
  return Config(
      data=DataConfig(source="files", shuffle_buffer=60_000),
      model=ModelConfig(embedding_dim=8, num_experts=4, expert_units=(64, 32),
                        tower_units=(32, 16)),
      train=TrainConfig(batch_size=512, eval_batch_size=8192, epochs=12,
                        learning_rate=0.002, early_stopping_patience=2,
                        steps_per_execution=20))


group("census", list(CENSUS_METHODS))
