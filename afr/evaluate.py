"""``python -m afr.evaluate profile=<name> recipe=<name|file.py>`` (also ``afr evaluate``): one recipe through
the protocol.

The recipe — a shipped one (e.g. ``recipe=fedadam``, with the profile's per-recipe defaults) or a file of your
own — is checked by the validator, then treated as a campaign's only agent candidate: one search run in the
sandbox, against the same-budget scalar-only control search on the baseline (``campaign.runs_per_arm`` runs,
the profile's ``campaign_runs`` by default), then the finals (fresh paired seeds, power-sized; held-out data),
the classification and the report. A rejected file stops the command before anything is written.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from .errors import AFRError, CampaignFailure, ConfigError, RunsFailed

__all__ = ["main", "evaluate", "given_recipe"]


def given_recipe(spec: str) -> tuple[str, str]:
    """(file text, label) of the recipe to evaluate: a shipped recipe as a one-class file deriving from it
    (so the profile's defaults for it apply), or a user's file as written (its path resolved here)."""
    from .recipe import RECIPES, recipe_source

    if spec in RECIPES:
        cls = RECIPES[spec]
        text = (
            f'"""The shipped recipe `{spec}`, put through the protocol by `afr evaluate`."""\n\n'
            f"from afr.recipe import {cls.__name__}\n\n\n"
            f"class Evaluated({cls.__name__}):\n"
            f'    """{cls.__name__} as shipped."""\n\n'
            f'    name = "{cls.name}"\n'
        )
        return text, spec
    path = Path(spec).expanduser().resolve()
    source = recipe_source(str(path))  # a missing or unreadable file, or one with no recipe class, stops here
    return source.text, str(path)


def evaluate(cfg: DictConfig) -> Any:
    """Run the protocol on ``cfg.recipe``; print the verdict and where the report is."""
    from .campaign import Campaign, check_candidate
    from .run import campaign_settings, print_summary

    if cfg.get("agent") is not None:
        raise ConfigError(
            "afr evaluate runs no agent: the given recipe is the only candidate",
            where="agent=",
            fix="drop agent=... (use `python -m afr.run agent=...` for a campaign)",
        )
    source, label = given_recipe(str(cfg.get("recipe")))
    stem = Path(label).stem if label.endswith(".py") else label
    agent_cfg = {"kind": "given", "name": "evaluate", "source": source, "label": label}
    name = f"{cfg.profile.name}-evaluate-{stem}-seed{cfg.get('campaign', {}).get('seed', 0)}"
    settings = campaign_settings(cfg, agent_cfg=agent_cfg, name=name)
    settings = dataclasses.replace(settings, agent_runs=1, top_k=1)
    check_candidate(settings, source, label)
    campaign = Campaign(settings)
    print(
        f"evaluate {label} on {settings.profile}: 1 search run against {settings.runs_per_arm} control runs "
        f"on the baseline {campaign.baseline.class_name}, then {len(campaign.final_seeds)} final seeds; "
        f"{settings.where()}",
        flush=True,
    )
    result = campaign.run()
    print_summary(campaign, result)
    verdicts = campaign.findings.verdicts if campaign.findings is not None else []
    if campaign.findings is not None and campaign.findings.partial:
        print(f"\nnot classified: {campaign.findings.partial}")
    for verdict in verdicts:
        print(f"\nverdict for {label}: {verdict.label} (rule {verdict.rule})")
        for reason in verdict.reasons:
            print(f"  - {reason}")
    if result.failure:
        raise CampaignFailure(
            f"the evaluation of {label} failed: {result.failure}",
            where=str(settings.directory),
            fix="the runs' reasons are above and in the ledger; fix the cause, then run again with a new "
            "campaign.name=... (this evaluation's runs stay recorded as they are)",
        )
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; user errors become one message and exit code 2."""
    try:
        evaluate(cfg)
    except AFRError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        # 2: bad input; 1: the evaluation ran (or tried to) and failed.
        sys.exit(1 if isinstance(exc, RunsFailed) else 2)
    except KeyboardInterrupt:
        print("interrupted: nothing is lost; run the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
