"""`bangdaiban faq report` and `faq suggest` on a seeded database, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from services.faq_index import DEFAULT_CALIBRATION_PATH

ROOT = Path(__file__).resolve().parents[2]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        "COLUMNS": "200",
    }
    environment.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_report_writes_the_thresholds_the_bot_reads_and_suggest_runs(tmp_path: Path) -> None:
    cli(tmp_path, "db", "upgrade")
    cli(tmp_path, "seed", "--data", str(ROOT / "data"))
    written = tmp_path / "calibration.yaml"
    splits = str(ROOT / "tests" / "data" / "faq_questions")
    report = cli(tmp_path, "faq", "report", "--splits", splits, "--calibration", str(written))
    assert "test (report)" in report.stdout and "answered directly and wrongly" in report.stdout
    committed = yaml.safe_load(DEFAULT_CALIBRATION_PATH.read_text(encoding="utf-8"))
    fresh = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert fresh["thresholds"] == committed["thresholds"]
    assert fresh["model"] == committed["model"]
    suggest = cli(tmp_path, "faq", "suggest")
    assert "0 group(s) from 0 answered question(s)" in suggest.stderr
