"""Config groups that are what runs: ``budget=<preset>`` and ``evaluation``.

* ``budget`` is a Hydra config group: ``budget=<preset>`` selects ``afr/conf/budget/<preset>.yaml`` and the
  defaults list merges ``afr/conf/budget_preset/<preset>/<profile>.yaml`` over the profile, so what
  ``--cfg job`` prints is exactly what a campaign records and runs (read back from its ledger).
* ``evaluation`` (``afr/conf/evaluation/default.yaml``) is read: a changed value is the rule the campaign
  records and classifies with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from afr.errors import ConfigError
from afr.ledger import Ledger
from afr.profiles import apply_budget, budget_presets, load_profile_config, profile_names
from afr.profiles._discovery import CONF_DIR
from afr.run import profile_config

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _compose(*overrides: str) -> dict[str, Any]:
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container


def test_the_issue_case_prints_the_preset_values() -> None:
    # Before: `--cfg job profile=ixi budget=smoke` printed rounds: 7 while the run used 1.
    profile = _compose("profile=ixi", "budget=smoke")["profile"]
    assert (profile["rounds"], profile["local_steps"], profile["budget_preset"]) == (1, 2, "smoke")
    assert _compose("profile=ixi")["profile"]["rounds"] == 7
    assert "budgets" not in profile  # no second, hand-merged copy of the presets


def test_every_shipped_preset_composes_to_what_the_library_merges() -> None:
    # The Hydra path (what runs) and apply_budget (benchmarks, tests) read the same files and agree.
    pairs = [(name, preset) for name in profile_names() for preset in budget_presets(name)]
    assert ("ixi", "smoke") in pairs and ("femnist", "cpu") in pairs
    for name, preset in pairs:
        assert (CONF_DIR / "budget" / f"{preset}.yaml").is_file(), f"budget={preset} is not an option"
        composed = profile_config(_compose(f"profile={name}", f"budget={preset}"))
        assert composed == apply_budget(load_profile_config(name), preset), (name, preset)


def test_a_profile_without_the_preset_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        profile_config(_compose("profile=heart_disease", "budget=smoke"))
    assert "profile 'heart_disease' has no budget preset 'smoke'" in info.value.message
    assert "use one of: default" in info.value.message


def test_cfg_job_is_what_the_campaign_records_and_runs(shared_data: Path, tmp_path: Path) -> None:
    args = [
        "agent=evolve",
        "profile=femnist",
        "budget=smoke",
        "evaluation.alpha=0.01",
        "evaluation.correction=bonferroni",
        "campaign.finals=false",
        "campaign.workers=1",
    ]
    shown = subprocess.run(
        [sys.executable, "-m", "afr.run", "--cfg", "job", *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    printed = yaml.safe_load(shown.stdout)
    profile = printed["profile"]
    assert (profile["rounds"], profile["budget_preset"]) == (2, "smoke")  # femnist as written: 2000 rounds

    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "run", *args, f"data_dir={shared_data}", "campaign.dir=camp"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    ledger = Ledger.for_campaign_dir(tmp_path / "camp")
    (campaign,) = [ledger.campaign(1)]
    recorded = campaign.config
    # Every key the preset sets, as printed, is what the campaign recorded as its profile
    for key in budget_presets("femnist")["smoke"]:
        assert recorded["profile_cfg"][key] == profile[key], key
    assert (
        recorded["limits"]["agent"]["runs"]
        == recorded["limits"]["control"]["runs"]
        == profile["campaign_runs"]
    )
    # ... and what its runs did: one validation point per printed round
    search = ledger.runs(campaign.id, stage="search")
    assert len(search) == 2 * profile["campaign_runs"]
    assert all(r.status == "ok" and len(r.per_round or ()) == profile["rounds"] for r in search)
    # The evaluation group, as printed, is the campaign's classification rules
    assert recorded["evaluation_cfg"] == printed["evaluation"]
    assert (recorded["rules"]["alpha"], recorded["rules"]["correction"]) == (0.01, "bonferroni")
    ledger.close()
