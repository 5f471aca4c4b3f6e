"""The main job (`make demo`) end to end on the tiny preset."""

import json

from absl import flags
from absl.testing import flagsaver
import pytest

from pipelines import cli
from pipelines import demo


@pytest.mark.slow
def test_demo_trains_reports_exports_and_reloads(tmp_path, tiny_data, capsys):
  out = tmp_path / "demo"
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exit_info:
      cli.run(demo.main, argv=[
          "demo", "--preset=tiny", f"--output_dir={out}",
          f"--data_dir={tiny_data}", "--verbose=0",
          "--override=train.epochs=2"])
  assert exit_info.value.code in (None, 0)
  printed = capsys.readouterr().out
  results = json.loads((out / "results.json").read_text())
  for task in ("ctr", "cvr", "ctcvr"):
    assert 0.5 < results["test"][f"{task}_auc"] <= 1.0, task
    assert f"{task.upper()} (" in printed
  assert results["test"]["num_examples"] == 1024
  assert results["config"]["model"]["name"] == "adaftr"
  serving = results["serving"]
  assert serving["num_scored"] == demo.NUM_SCORED
  assert serving["max_abs_diff"] <= demo.MAX_SERVING_DIFF
  assert (out / "export" / "1" / "saved_model.pb").exists()
  assert "reloaded in a fresh process" in printed
  assert "tau: mean" in printed
