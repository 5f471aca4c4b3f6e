"""Equal-budget sweep: trial drawing and a tiny end-to-end run."""

import json

from absl import flags
from absl.testing import flagsaver
import pytest

from adaftr_tf import experiments
from pipelines import sweep as sweep_main
from pipelines.benchmarks import sweep

FLAGS = flags.FLAGS


@pytest.mark.parametrize("method", experiments.method_names())
def test_every_method_has_a_space_and_equal_budget(method):
  trials = sweep.draw_trials(method, 5, seed=1)
  assert len(trials) == 5
  assert len({tuple(t) for t in trials}) == 5
  assert trials == sweep.draw_trials(method, 5, seed=1)  # seeded
  assert trials[0] == []  # the method as defined is always a trial
  keys = {o.split("=")[0] for o in trials[1]}
  assert set(experiments.SHARED_SPACE) <= keys


def test_unknown_method_has_no_space():
  with pytest.raises(ValueError, match="unknown method 'nope'"):
    sweep.draw_trials("nope", 2, seed=0)


def test_tiny_sweep_selects_on_validation(tmp_path, tiny_run, capsys):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["sweep", "--preset=tiny", "--method=mmoe", "--budget=2",
           f"--output_dir={tmp_path}", f"--data_dir={tiny_run['data_dir']}",
           "--override=train.steps_per_epoch=3"])
    sweep_main.main(["sweep"])
  result = json.loads((tmp_path / "sweep.json").read_text())
  assert len(result["trials"]) == 2
  best = max(t["score"] for t in result["trials"])
  assert result["winner"]["score"] == best
  for trial in result["trials"]:
    valid = trial["valid"]
    assert trial["score"] == pytest.approx(
        (valid["ctr_auc"] + valid["cvr_auc"] + valid["ctcvr_auc"]) / 3)
  assert result["trials"][0]["overrides"] == []
  table = (tmp_path / "sweep.md").read_text()
  assert table.count("\n| ") == 2 + 2 and "(as defined)" in table
  expected = (" ".join(f"--override={o}" for o in result["winner"]["overrides"])
              or "the method as defined (no overrides)")
  assert f"winner (validation): {expected}" in capsys.readouterr().out
