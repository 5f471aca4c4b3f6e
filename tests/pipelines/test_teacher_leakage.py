"""Tests of the `python -m pipelines.teacher_leakage` entrypoint: it prints
and writes the report of pipelines/training/teacher_leakage.py (tested in
tests/pipelines/training/test_teacher_leakage.py), and refuses bad flags in
one line."""

import json

from absl import app
import pytest

from pipelines import teacher_leakage as entrypoint
from tests.helpers.flags import run_main


def test_the_entrypoint_prints_and_writes_the_report(tiny_run, tmp_path,
                                                     capsys):
  out = tmp_path / "leakage.json"
  run_main(entrypoint, [f"--teacher_dir={tiny_run['model_dir']}",
                        f"--data_dir={tiny_run['data_dir']}", "--bins=3",
                        f"--output={out}"])
  printed = capsys.readouterr().out
  written = json.loads(out.read_text())
  assert written["teachers"] == [tiny_run["model_dir"]]
  assert "3 quantile bins" in written["strata"]
  assert f"student's tau {written['leakage']:+.4f}" in printed
  assert f"the student's tau {written['valid']['student_auc']:.4f}" in printed
  with pytest.raises(app.UsageError, match=r"nowhere holds no trained model"):
    run_main(entrypoint, [f"--teacher_dir={tmp_path / 'nowhere'}",
                          f"--data_dir={tiny_run['data_dir']}"])
  with pytest.raises(app.UsageError, match=r"--bins must be >= 1, got 0"):
    run_main(entrypoint, [f"--teacher_dir={tiny_run['model_dir']}",
                          f"--data_dir={tiny_run['data_dir']}", "--bins=0"])
  with pytest.raises(app.UsageError, match=r"--max_rows must be >= 0"):
    run_main(entrypoint, [f"--teacher_dir={tiny_run['model_dir']}",
                          f"--data_dir={tiny_run['data_dir']}",
                          "--max_rows=-1"])
  with pytest.raises(app.UsageError, match=r"--teacher_dir is required"):
    run_main(entrypoint, [f"--data_dir={tiny_run['data_dir']}"])
