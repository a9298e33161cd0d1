"""``afr export flower``: one candidate of a campaign as a folder that runs it in Flower.

The folder reuses the recipe file itself rather than translating it: ``recipe.py`` is the candidate's source
as the ledger holds it, ``export.json`` the campaign's profile config and the candidate's scalars, and
``flower_app/`` (a copy of :mod:`afr.export.flower_app`) the Flower strategy and client that call the
recipe's hooks with AFR's semantics (see ``README.md`` in the folder).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..ledger import CandidateRecord, LedgerError, find_campaign, open_ledger

__all__ = ["export_flower"]

APP_PACKAGE = "flower_app"
_APP_DIR = Path(__file__).resolve().parent / APP_PACKAGE

RUN_SCRIPT = '''"""Run this export as a Flower federation.

python run_simulation.py [--backend ray|inprocess] [--seed N] [--rounds R] [--out result.json]
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flower_app.simulation import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(HERE, sys.argv[1:]))
'''


def export_flower(
    source: str | os.PathLike[str],
    candidate: str,
    out: str | os.PathLike[str],
    *,
    campaign: str | None = None,
    seed: int | None = None,
    stage: str = "final",
) -> Path:
    """Write the Flower export of ``candidate`` (``agent#30``, ``control#12``, ``baseline#1``) of the campaign
    at ``source`` (a campaign directory or database URL; ``campaign`` names one in a shared database) to the
    folder ``out`` (created; it must not hold files already). Returns the folder."""
    if stage not in ("final", "search"):
        raise ConfigError(f"stage must be 'final' or 'search', got {stage!r}", where="--stage")
    target = Path(out).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target} already exists and is not an empty folder", where="--out", fix="give a new folder"
        )
    ledger = open_ledger(source, where="afr export flower")
    try:
        record = find_campaign(ledger, campaign)
        found = _find_candidate(ledger.candidates(record.id), candidate, record.name)
    finally:
        ledger.close()
    profile_cfg = record.config.get("profile_cfg")
    if not isinstance(profile_cfg, dict):
        raise LedgerError(
            f"campaign {record.name!r} recorded no profile config",
            where=str(source),
            fix="export from a campaign",
        )
    if seed is None:
        finals = (profile_cfg.get("seeds") or {}).get("final") or [0]
        seed = int(finals[0])
    recipe_text, class_name = _recipe_file(found, record.name, record.profile)
    spec: dict[str, Any] = {
        "format": 1,
        "campaign": record.name,
        "candidate": found.name,
        "candidate_status": found.status,
        "candidate_score": found.score,
        "profile": record.profile,
        "profile_cfg": profile_cfg,
        "class_name": class_name,
        "scalars": dict(found.scalars or {}),
        "seed": seed,
        "stage": stage,
    }
    target.mkdir(parents=True, exist_ok=True)
    (target / "recipe.py").write_text(recipe_text, encoding="utf-8")
    (target / "export.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    app = target / APP_PACKAGE
    app.mkdir()
    for path in sorted(_APP_DIR.glob("*.py")):
        shutil.copyfile(path, app / path.name)
    (target / "run_simulation.py").write_text(RUN_SCRIPT, encoding="utf-8")
    (target / "README.md").write_text(_readme(spec), encoding="utf-8")
    return target


def _find_candidate(candidates: list[CandidateRecord], name: str, campaign: str) -> CandidateRecord:
    for c in candidates:
        if c.name == name:
            if c.status == "rejected":
                raise ConfigError(
                    f"candidate {name} of campaign {campaign!r} was rejected by the validator (it never ran)",
                    where="afr export flower",
                    fix="export a candidate that ran (afr report <campaign> lists them with their status)",
                )
            return c
    shown = ", ".join(c.name for c in candidates[:8]) + (" ..." if len(candidates) > 8 else "")
    raise ConfigError(
        f"no candidate named {name!r} in campaign {campaign!r}",
        where="afr export flower",
        fix=f"give one of its candidates ({shown})" if candidates else "the campaign has no candidate yet",
    )


def _recipe_file(candidate: CandidateRecord, campaign: str, profile: str) -> tuple[str, str | None]:
    """``recipe.py``'s text and the recipe's class name (None: the file's last Recipe subclass)."""
    scalars = ", ".join(f"{k}={v!r}" for k, v in sorted((candidate.scalars or {}).items())) or "none"
    header = (
        f"# Exported by `afr export flower` from campaign {campaign!r} (profile {profile}): candidate "
        f"{candidate.name}, status {candidate.status}.\n"
        f"# Scalars set by the candidate (the others keep the profile's defaults): {scalars}; export.json "
        "holds them and flower_app/task.py applies them.\n"
        "# This file runs in the Flower processes without AFR's sandbox: read it before you run it.\n"
    )
    builtin = candidate.meta.get("builtin")
    if builtin:  # a shipped recipe: its source imports relatively inside afr.recipe, so import it instead
        from ..recipe import RECIPES

        cls = RECIPES[builtin]
        return (
            header + f"\nfrom afr.recipe import {cls.__name__}  # the shipped recipe {builtin!r}\n",
            cls.__name__,
        )
    return header + "\n" + candidate.source, candidate.meta.get("class_name")


def _readme(spec: dict[str, Any]) -> str:
    return f"""# {spec["candidate"]} of campaign {spec["campaign"]} as a Flower federation

Written by `afr export flower`. The candidate's recipe runs unchanged: `recipe.py` is its source,
`export.json` the campaign's profile config (`{spec["profile"]}`) and the candidate's scalars.

* `flower_app/strategy.py` — `RecipeStrategy`, a `flwr.server.strategy.Strategy`: `configure_fit` calls the
  recipe's `select_clients`, `broadcast`, `local_steps` and `client_lr` (sent in each client's fit config);
  `aggregate_fit` builds AFR's `ClientUpdate`s in selection order and calls `aggregate`, keeping the server
  state across rounds; evaluation is AFR's metric (unweighted mean over clients of the profile's metric).
* `flower_app/client.py` — `RecipeClient`, a `flwr.client.NumPyClient`: local SGD on the recipe's
  `local_objective` with AFR's batch order and RNG seeds, then `client_extras`; its batch stream, RNG
  state, buffers and the recipe's `client_state` persist in Flower's `context.state`.
* `flower_app/task.py` — loads the profile (model variant from `model_variant`, data) and the recipe.
* `run_simulation.py` — runs it on one machine and prints (or writes, `--out`) the curve and the final
  model's val and test metric:

      pip install 'flwr[simulation]'              # AFR itself must be installed too
      python run_simulation.py --backend ray       # Flower's simulation engine, one SuperNode per client
      python run_simulation.py --backend inprocess # flwr's server loop, clients in this process (no Ray)

Options: `--seed` (default {spec["seed"]}), `--rounds` (default: the profile's budget), `--stage`
(`final`: whole train split, as `afr run`; `search`: train minus validation, as the campaign's search),
`--data-dir` (AFR's data folder).

With the same seed, rounds and stage, the run reproduces AFR's engine (per-client path) to float rounding:
same initial model, client selection, batches and hook calls. For a real deployment, build a `ServerApp`
from `RecipeStrategy` and a `ClientApp` from `RecipeClient` as `flower_app/simulation.py` does; each node
needs AFR installed and its client's data in AFR's data folder (the profile loads the whole federation's
data and the node keeps its own client's part).
"""
