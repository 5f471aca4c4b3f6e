"""Tests of the `python -m pipelines.teacher_fields` entrypoint: it prints
and writes the report of pipelines/training/teacher_fields.py (tested in
tests/pipelines/training/test_teacher_fields.py), and refuses bad flags in
one line."""

import json

from absl import app
import pytest

from pipelines import teacher_fields as entrypoint
from tests.helpers.flags import run_main


def test_the_entrypoint_prints_and_writes_the_report(
    tiny_run, tiny_linear_teacher, tmp_path, capsys):
  out = tmp_path / "fields.json"
  run_main(entrypoint, [f"--teacher_dir={tiny_linear_teacher}",
                        f"--data_dir={tiny_run['data_dir']}", "--share=0.1",
                        "--max_rows=512", f"--output={out}"])
  printed = capsys.readouterr().out
  written = json.loads(out.read_text())
  assert written["teacher"] == tiny_linear_teacher and written["share"] == 0.1
  top = max(written["fields"], key=lambda f: f["mean_share"])
  assert f"{top['name']:24s} {top['mean_share']:.4f}" in printed
  spearman = written["spearman_neg_tau_vs_r"]["all_fields"]
  assert f"every field {spearman:.4f}" in printed
  with pytest.raises(app.UsageError, match=r"reads a linear teacher"):
    run_main(entrypoint, [f"--teacher_dir={tiny_run['model_dir']}",
                          f"--data_dir={tiny_run['data_dir']}"])
  with pytest.raises(app.UsageError, match=r"--share must lie in \[0, 1\), "
                     r"got 1\.5"):
    run_main(entrypoint, [f"--teacher_dir={tiny_linear_teacher}",
                          f"--data_dir={tiny_run['data_dir']}", "--share=1.5"])
  with pytest.raises(app.UsageError, match=r"--max_rows must be >= 0"):
    run_main(entrypoint, [f"--teacher_dir={tiny_linear_teacher}",
                          f"--data_dir={tiny_run['data_dir']}",
                          "--max_rows=-1"])
  with pytest.raises(app.UsageError, match=r"--teacher_dir is required"):
    run_main(entrypoint, [f"--data_dir={tiny_run['data_dir']}"])
