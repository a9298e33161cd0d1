"""The campaign report: Markdown + PNG plots, rebuilt from the ledger alone (``python -m afr.report``)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..budget import BudgetAccountant
from ..ledger import Ledger, RunRecord
from ._classify import (
    FinalistEvidence,
    Verdict,
    classify_all,
    load_rules,
    render_table_markdown,
    survival_table,
)
from ._finals import Finalist, select_finalists

__all__ = ["CampaignFindings", "collect_findings", "write_report"]


@dataclass
class CampaignFindings:
    """Everything the report says, computed from the ledger."""

    name: str
    profile: str
    agent: str
    metric: str
    higher_is_better: bool
    finalists: list[Finalist]
    evidence: dict[str, FinalistEvidence]
    verdicts: list[Verdict]
    counts: dict[str, int]
    budget: dict[str, dict[str, Any]]
    runs: list[RunRecord]


def collect_findings(campaign_dir: str | Path, campaign_id: int = 1) -> CampaignFindings:
    """Read a campaign's ledger and classify its agent finalists (no training happens here)."""
    from ..profiles import make_profile

    ledger = Ledger.for_campaign_dir(campaign_dir)
    campaign = ledger.campaign(campaign_id)
    finals_cfg = campaign.config.get("finals") or [True, 3]
    top_k = int(finals_cfg[1])
    profile = make_profile(campaign.profile, campaign.config["profile_cfg"])
    hib = profile.higher_is_better
    finalists = select_finalists(ledger, campaign.id, top_k, hib)
    runs = ledger.runs(campaign.id)
    test: dict[int, dict[int, float]] = defaultdict(dict)
    heldout: dict[int, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        if run.evaluation is None or run.evaluation.get("mean") is None:
            continue
        if run.stage == "final":
            test[run.candidate_id][run.seed] = float(run.evaluation["mean"])
        elif run.stage == "heldout":
            heldout[run.candidate_id][run.split.removeprefix("heldout:")][run.seed] = float(
                run.evaluation["mean"]
            )
    evidence = {
        f.name: FinalistEvidence(
            name=f.name,
            arm=f.role,
            search_score=f.candidate.score,
            test=dict(test[f.candidate.id]),
            heldout={k: dict(v) for k, v in heldout[f.candidate.id].items()},
        )
        for f in finalists
    }
    baseline = next((evidence[f.name] for f in finalists if f.role == "baseline"), None)
    control = next((evidence[f.name] for f in finalists if f.role == "control"), baseline)
    agents = [evidence[f.name] for f in finalists if f.role == "agent"]
    verdicts = (
        classify_all(agents, baseline, control, rules=load_rules(), higher_is_better=hib)
        if baseline is not None and agents
        else []
    )
    candidates = ledger.candidates(campaign.id, arm="agent")
    counts = {
        "proposed": len(candidates),
        "rejected": sum(c.status in ("rejected", "duplicate") for c in candidates),
        "failed": sum(c.status == "failed" for c in candidates),
        "run": sum(c.status in ("ok", "failed") for c in candidates),
    }
    budget = BudgetAccountant(ledger, campaign.id, {}).totals()
    return CampaignFindings(
        campaign.name,
        campaign.profile,
        campaign.agent,
        profile.metric_name,
        hib,
        finalists,
        evidence,
        verdicts,
        counts,
        budget,
        runs,
    )


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean_std(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "—"
    std = statistics.pstdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.fmean(finite):.4f} ± {std:.4f}"


def write_report(campaign_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write ``report.md`` and its PNG plots into the campaign dir (or ``output``); return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    campaign_dir = Path(campaign_dir)
    findings = collect_findings(campaign_dir)
    out = Path(output) if output else campaign_dir / "report.md"
    plots = out.parent / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    search = [r for r in findings.runs if r.stage == "search" and r.status == "ok"]

    # 1. per-arm validation score distributions
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, arm in enumerate(("agent", "control")):
        scores = [
            r.final_metric for r in search if r.run_key.startswith(arm + "/") and r.final_metric is not None
        ]
        ax.scatter([i + 0.08 * ((j % 5) - 2) for j in range(len(scores))], scores, alpha=0.6, label=arm)
    ax.set_xticks([0, 1], ["agent", "control"])
    ax.set_ylabel(f"validation {findings.metric}")
    ax.set_title("Search: one point per FL run")
    _save(fig, plots / "search_scores.png")

    # 2. validation curves of the finalists' search runs
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for f in findings.finalists:
        run = next((r for r in search if r.candidate_id == f.candidate.id), None)
        if run and run.per_round:
            rounds = [p["round"] for p in run.per_round if p.get("val") is not None]
            ax.plot(
                rounds,
                [p["val"] for p in run.per_round if p.get("val") is not None],
                marker=".",
                label=f.name,
            )
    ax.set_xlabel("round")
    ax.set_ylabel(f"validation {findings.metric}")
    ax.legend(fontsize=7)
    _save(fig, plots / "finalist_curves.png")

    # 3. paired seeds: each finalist's test metric per final seed
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ev in findings.evidence.items():
        seeds = sorted(ev.test)
        ax.plot(range(len(seeds)), [ev.test[s] for s in seeds], marker="o", label=name)
        ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
    ax.set_xlabel("final seed (paired across finalists)")
    ax.set_ylabel(f"test {findings.metric}")
    ax.legend(fontsize=7)
    _save(fig, plots / "paired_seeds.png")

    # 4. budget spend over time
    fig, ax = plt.subplots(figsize=(6, 3.5))
    finished = sorted((r for r in findings.runs if r.finished_at), key=lambda r: r.finished_at)
    if finished:
        t0 = finished[0].started_at
        for arm in ("agent", "control", "finals"):
            times = [
                (r.finished_at - t0).total_seconds()
                for r in finished
                if (r.stage == "search" and r.run_key.startswith(arm + "/"))
                or (arm == "finals" and r.stage != "search")
            ]
            ax.step(times, range(1, len(times) + 1), where="post", label=arm)
    ax.set_xlabel("seconds since the first run")
    ax.set_ylabel("FL runs charged")
    ax.legend()
    _save(fig, plots / "budget_spend.png")

    lines = [
        f"# AFR campaign report: {findings.name}",
        "",
        f"Profile `{findings.profile}`, agent `{findings.agent}` against the scalar-only control (Optuna). "
        f"Metric: {findings.metric} ({'higher' if findings.higher_is_better else 'lower'} is better). "
        "Validation scores come from the search (one run each); test and held-out metrics from the finals "
        "(fresh paired seeds), computed by the parent process on returned weights.",
        "",
        "## Budget (one accountant, same unit for every arm, failures included)",
        "",
        "| arm | runs charged | client-steps charged | outcomes |",
        "|---|---|---|---|",
    ]
    for arm, t in findings.budget.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(t["outcomes"].items()))
        lines.append(f"| {arm} | {t['spent_runs']} | {t['spent_client_steps']} | {outcomes} |")
    lines += [
        "",
        "![search scores](plots/search_scores.png) ![budget spend](plots/budget_spend.png)",
        "",
        "## Finalists",
        "",
        "| finalist | search validation | test mean ± std (seeds) | held-out mean |",
        "|---|---|---|---|",
    ]
    for name, ev in findings.evidence.items():
        held = [v for setting in ev.heldout.values() for v in setting.values()]
        search_score = f"{ev.search_score:.4f}" if ev.search_score is not None else "—"
        lines.append(
            f"| {name} | {search_score} | {_mean_std(list(ev.test.values()))} ({len(ev.test)}) | "
            f"{_mean_std(held)} |"
        )
    lines += ["", "![finalist curves](plots/finalist_curves.png) ![paired seeds](plots/paired_seeds.png)", ""]
    lines += ["## Classification of the agent's gains", ""]
    if not findings.verdicts:
        lines.append("No agent finalist with final runs (finals disabled or not yet run).")
    for verdict in findings.verdicts:
        lines += [f"### {verdict.name}: **{verdict.label}** (rule {verdict.rule})", ""]
        lines += [f"- {reason}" for reason in verdict.reasons]
        lines.append("")
    rows = survival_table(
        {findings.profile: findings.verdicts}, {findings.profile: findings.counts}, arm="agent"
    )
    lines += ["## Survival table", "", render_table_markdown(rows), ""]
    out.write_text("\n".join(lines))
    return out


def render_worked_example(campaign_dir: str | Path) -> str:
    """``docs/worked_example.md``: how the control baseline is built and one candidate's path to its verdict.

    Everything comes from the campaign's ledger; candidates are named by their proposal keys and no
    timings are printed, so a seeded campaign gives the same text on every run.
    """
    from ..profiles import make_profile
    from ..recipe import FedAvg

    campaign_dir = Path(campaign_dir)
    findings = collect_findings(campaign_dir)
    ledger = Ledger.for_campaign_dir(campaign_dir)
    campaign = ledger.campaign(1)
    profile = make_profile(campaign.profile, campaign.config["profile_cfg"])
    space = profile.scalar_space(FedAvg)
    baseline_source = (Path(__file__).resolve().parents[1] / "recipe" / "fedavg.py").read_text()
    control = ledger.candidates(campaign.id, arm="control")
    best_control = ledger.best_candidates(
        campaign.id, "control", 1, higher_is_better=findings.higher_is_better
    )

    def key(candidate_id: int) -> str:
        return str(ledger.candidate(candidate_id).meta.get("proposal_key", candidate_id))

    lines = [
        "# Worked example: the control baseline and one candidate's path through the protocol",
        "",
        "<!-- Generated by `python -m afr.report <campaign> --worked-example` from the campaign of "
        "`tests/test_worked_example.py` (see its COMMAND). Do not edit by hand; the test fails when "
        "stale. -->",
        "",
        f"Campaign `{findings.name}` on profile `{findings.profile}`: agent `{findings.agent}` against the "
        f"scalar-only control. Metric: {findings.metric} "
        f"({'higher' if findings.higher_is_better else 'lower'} is better). Candidates are named by "
        "their proposal keys (`agent-<step>-<i>`, `control-<trial>`).",
        "",
        "## 1. The baseline recipe",
        "",
        "```python",
        baseline_source.rstrip("\n"),
        "```",
        "",
        "## 2. Its declared scalar space (the only thing the control arm may tune)",
        "",
        "| scalar | default (this profile) | low | high | scale |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{n}` | {s.default:g} | {s.low:g} | {s.high:g} | {'log' if s.log else 'linear'} |"
        for n, s in space.items()
    ]
    lines += [
        "",
        "The control arm is an Optuna study (seeded TPE) over exactly these scalars; trial 0 is the "
        "baseline's defaults. Each trial is one FL run of the baseline recipe file, charged like any "
        "agent candidate.",
        "",
        "## 3. Budgets and spend (one accountant, FL runs and client-steps, failures included)",
        "",
        "| account | runs charged | client-steps charged |",
        "|---|---|---|",
    ]
    lines += [
        f"| {arm} | {t['spent_runs']} | {t['spent_client_steps']} |" for arm, t in findings.budget.items()
    ]
    lines += ["", "## 4. The control arm's trials", "", "| trial | scalars | validation |", "|---|---|---|"]
    for c in sorted(control, key=lambda c: int(str(c.meta.get("proposal_key", "control-0")).split("-")[1])):
        scalars = ", ".join(f"{k}={v:.4g}" for k, v in sorted((c.scalars or {}).items()))
        score = f"{c.score:.4f}" if c.score is not None else c.status
        lines.append(f"| `{c.meta.get('proposal_key')}` | {scalars} | {score} |")
    if best_control:
        lines += ["", f"Best control trial: `{key(best_control[0].id)}` ({best_control[0].score:.4f})."]
    verdict = findings.verdicts[0] if findings.verdicts else None
    if verdict is None:
        lines += ["", "No agent finalist was classified (finals were not run)."]
        return "\n".join(lines) + "\n"
    candidate = ledger.candidate(int(verdict.name.split("#")[1]))
    ev = findings.evidence[verdict.name]
    lines += [
        "",
        f"## 5. One candidate: `{key(candidate.id)}` (the agent's best by validation)",
        "",
        f"What the agent said it did: {candidate.meta.get('note', '—')}",
        "",
        "```diff",
        candidate.diff.rstrip("\n"),
        "```",
        "",
        "## 6. Its path through the classification",
        "",
        "Fresh paired seeds (never used in the search), test metric computed by the parent process:",
        "",
        "| finalist | " + " | ".join(f"seed {s}" for s in sorted(ev.test)) + " |",
        "|---|" + "---|" * len(ev.test),
    ]
    for name, other in findings.evidence.items():
        label = f"`{key(int(name.split('#')[1]))}` ({other.arm})"
        lines.append(
            f"| {label} | "
            + " | ".join(f"{other.test.get(s, float('nan')):.4f}" for s in sorted(ev.test))
            + " |"
        )
    lines += ["", f"Verdict: **{verdict.label}** (decided by rule {verdict.rule}).", ""]
    lines += [f"{i}. {reason}" for i, reason in enumerate(verdict.reasons, 1)]
    lines += ["", "The rules, thresholds and the statistical test are in `docs/classification.md`.", ""]
    return "\n".join(lines)
