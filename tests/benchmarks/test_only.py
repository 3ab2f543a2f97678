"""``python -m benchmarks --only``: a focused run of chosen workloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main


def test_an_unknown_workload_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--quick", "--only", "set_seq,nope"])
    assert caught.value.code == 2
    assert "unknown workload(s): nope" in capsys.readouterr().err


def test_only_runs_the_named_workloads_and_no_memory_run(tmp_path: Path) -> None:
    assert main(["--quick", "--only", "get_seq", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "latest.json").read_text())
    # get_seq reads what set_seq wrote in the same round: both run, nothing else.
    assert {cell["workload"] for cell in doc["results"]} == {"set_seq", "get_seq"}
    for cell in doc["results"]:
        if cell["system"] in ("plyvel", "kvruntime"):
            assert cell["error"] is None, cell
            assert cell["ops_per_s"] > 0
    assert doc["memory"] is None
    assert doc["memory_error"] == "not measured (--only)"


def test_only_writes_nothing_without_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--quick", "--only", "get_seq"]) == 0
    assert not any(tmp_path.rglob("latest.json"))
