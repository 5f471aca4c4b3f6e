"""Tests of pipelines/cli.py's `report`: a measuring job's result printed
and written as JSON, its ValueError a one-line usage error. The usage
errors of every entrypoint and `begin_job`: tests/test_package.py."""

import json

from absl import app
import pytest

from pipelines import cli


def test_a_report_is_printed_and_written(tmp_path, capsys):
  out = tmp_path / "report.json"
  result = cli.report(lambda: {"auc": 0.75, "rows": 3},
                      lambda r: f"{r['rows']} rows, AUC {r['auc']:.2f}",
                      str(out))
  assert result == {"auc": 0.75, "rows": 3}
  assert capsys.readouterr().out == "3 rows, AUC 0.75\n"
  assert json.loads(out.read_text()) == result
  cli.report(lambda: {"rows": 1}, str, None)   # printed only
  assert capsys.readouterr().out == "{'rows': 1}\n"


@pytest.mark.parametrize("error", [ValueError, FileNotFoundError])
def test_a_measure_that_fails_is_a_usage_error(tmp_path, error):
  def measure():
    raise error("no trained model in runs/x")
  with pytest.raises(app.UsageError, match=r"^no trained model in runs/x$"):
    cli.report(measure, str, str(tmp_path / "never.json"))
  assert not (tmp_path / "never.json").exists()
