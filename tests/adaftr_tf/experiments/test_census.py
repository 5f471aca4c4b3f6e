"""Tests of adaftr_tf/experiments/census.py: the census preset and group."""

from adaftr_tf import experiments
from adaftr_tf.experiments import census


def test_census_preset_reads_converted_data_and_selects_on_mean_auc():
  config = experiments.get_preset("census").validate()
  assert config.data.source == "files"
  assert config.model.objective == "auto"          # the data's relation
  assert config.train.checkpoint_metric == "auto"  # mean task AUC there
  assert config.train.early_stopping_patience >= 1


def test_census_group_has_the_baselines_and_the_adaftr_variants():
  members = experiments.group_members("census")
  assert members == list(census.CENSUS_METHODS)
  for name in members:   # every member is registered and validates
    experiments.method_config(name, experiments.get_preset("census"),
                              tuned=False).validate()
  assert {"single_task", "shared_bottom", "mmoe", "ple"} <= set(members)
  assert experiments.get_method("adaftr_mmoe_transfer_gate").baseline == "mmoe"
