"""Hostile files given to ``python -m afr.run recipe=<file.py>`` (class 6 of issue 14): validated, sandboxed,
labelled by their own class and sha256.

The candidates are those of ``candidates/`` with ``CATEGORY: run-file``; their MUST header is checked here
through :func:`afr.run.train_and_test` (``test_adversarial.py`` checks them through the campaign too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from afr.errors import ConfigError, RunsFailed
from afr.run import train_and_test
from afr.surface import surface_table, validate
from tests.adversarial.test_adversarial import CANDIDATES, Candidate

RUN_FILE = [c for c in CANDIDATES if c.headers.get("CATEGORY") == "run-file"]


def _config(path: Path):
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                f"recipe={path}",
                "profile=synthetic",
                "seeds=[42]",
                "profile.rounds=1",
                "profile.local_steps=2",
                "campaign.timeout_s=60",
                "campaign.memory_mb=1536",
            ],
        )


def test_there_are_run_file_candidates() -> None:
    assert {c.kind for c in RUN_FILE} == {"rejected", "contained"}


@pytest.mark.parametrize("candidate", RUN_FILE, ids=lambda c: c.name)
def test_afr_run_validates_and_sandboxes_a_file(
    candidate: Candidate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = Path("/tmp/afr_adversarial_canary/sentinel")
    before = canary.read_text() if canary.exists() else None
    path = tmp_path / candidate.path.name
    path.write_text(candidate.source)
    if candidate.kind == "rejected":
        with pytest.raises(ConfigError) as err:
            train_and_test(_config(path))
        report = validate(candidate.source, surface_table("synthetic"))
        assert set(candidate.expected) <= set(report.rules)
        assert "breaks the recipe surface" in err.value.message
        assert f"first: [{report.violations[0].rule}]" in err.value.message
    else:
        out = tmp_path / "run"
        out.mkdir()
        if candidate.expected[0] == "ok":
            train_and_test(_config(path), out)
        else:  # every seed failed: a non-zero exit (RunsFailed), with the results written all the same
            with pytest.raises(RunsFailed):
                train_and_test(_config(path), out)
        summary = json.loads((out / "results.json").read_text())
        assert "untrusted" in capsys.readouterr().out
        assert [row["status"] for row in summary["seeds"]] == [candidate.expected[0]]
        assert summary["seeds"][0]["message"]
        class_name = candidate.source.split("\nclass ", 1)[1].split("(", 1)[0]
        assert summary["recipe"] == class_name != "fedavg"
        assert summary["recipe_sha256"] == hashlib.sha256(candidate.source.encode()).hexdigest()
    assert (canary.read_text() if canary.exists() else None) == before
