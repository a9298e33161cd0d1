"""The campaign report: Markdown + PNG plots, rebuilt from the ledger alone (``python -m afr.report``)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..budget import BudgetAccountant
from ..ledger import CampaignRecord, CandidateRecord, Ledger, RunRecord, find_campaign, open_ledger
from ..recipe import Scalar
from ._classify import (
    ClassificationRules,
    FinalistEvidence,
    Verdict,
    classify_all,
    load_rules,
    render_table_markdown,
    survival_table,
)
from ._finals import Finalist, select_finalists
from ._racing import RungHistory, rung_histories

__all__ = ["CampaignFindings", "collect_findings", "write_report", "arm_failures", "closing_summary"]


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
    baseline: dict[str, Any]
    """The campaign's baseline recipe: ``label``, ``class_name``, ``source`` (the control's trial 0)."""
    control_space: dict[str, Scalar]
    """The scalars the control arm tuned, with the profile's ranges."""
    rules: ClassificationRules
    """The thresholds the verdicts used, with the profile's margin."""
    status: str = "finished"
    """The campaign's status in the ledger (``running``, ``interrupted``, ``finished``)."""
    partial: str = ""
    """Why the finals are incomplete (then nothing is classified); empty when they are complete."""
    control_is_baseline: bool = False
    """The tuned control's best trial is the baseline itself (its defaults scored best, or its best setting
    ran exactly as the defaults did: the same search curve)."""
    agent_calls: dict[str, Any] = field(default_factory=dict)
    """The agent's model calls (:func:`_call_summary`); empty for agents that call no model."""
    agent_stopped: str = ""
    """Why the agent arm stopped before spending its budget ('' if it did not)."""
    campaign_id: int = 0
    """The campaign's id in its ledger (a database may hold many campaigns)."""
    racing: dict[str, RungHistory] = field(default_factory=dict)
    """With seed racing on: each finalist's rung history (its search seeds, scores, mean, spread)."""
    racing_seeds: list[int] = field(default_factory=list)
    """With seed racing on: the search seeds in rung order; empty when it was off."""


def _campaign_facts(campaign: CampaignRecord, control: list[CandidateRecord]) -> dict[str, Any]:
    """Metric, direction, baseline, control space, rules and final seeds as the campaign recorded them.

    Ledgers written before the campaign recorded these facts rebuild them from the profile config (once).
    """
    config = campaign.config
    facts: dict[str, Any] = {
        "metric": config.get("metric"),
        "higher_is_better": config.get("higher_is_better"),
        "baseline": dict(config.get("baseline") or {"label": "afr/recipe/fedavg.py", "class_name": "FedAvg"}),
        "control_space": {
            name: Scalar(**values) for name, values in (config.get("control_space") or {}).items()
        },
        "rules": load_rules(**config["rules"]) if config.get("rules") else None,
        "final_seeds": config.get("final_seeds"),
    }
    if facts["metric"] is None or not facts["control_space"] or facts["rules"] is None:
        from ..profiles import make_profile
        from ..recipe import recipe_source

        profile = make_profile(campaign.profile, config["profile_cfg"])
        facts["metric"], facts["higher_is_better"] = profile.metric_name, profile.higher_is_better
        facts["control_space"] = profile.scalar_space(recipe_source(profile.baseline))
        facts["rules"] = facts["rules"] or load_rules(margin=profile.verdict.margin)
    trial0 = next((c for c in control if c.meta.get("proposal_key") == "control-0"), None)
    facts["baseline"]["source"] = trial0.source if trial0 is not None else ""
    return facts


def arm_failures(
    ledger: Ledger, campaign_id: int, arms: Iterable[str] = ("agent", "control")
) -> dict[str, str]:
    """Each of ``arms`` that has no successful search run yet, with why (one line): its runs' outcomes and
    the last failure's message, or, with no run at all, what became of its candidates."""
    out: dict[str, str] = {}
    search = ledger.runs(campaign_id, stage="search")
    for arm in arms:
        candidates = ledger.candidates(campaign_id, arm=arm)
        if any(c.status == "ok" for c in candidates):
            continue
        runs = [r for r in search if r.run_key.split("/")[0] == arm]
        if runs:
            outcomes = defaultdict(int)
            for r in runs:
                outcomes[r.status] += 1
            last = runs[-1]
            told = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
            why = f"{len(runs)} run(s): {told}; last: {last.status}: {' '.join((last.message or '').split())}"
        else:
            rejected = sum(c.status == "rejected" for c in candidates)
            why = f"no run; {len(candidates)} candidate(s), {rejected} rejected by the validator"
        out[arm] = f"the {arm} arm has no successful run ({why[:400]})"
    return out


def _incomplete(
    campaign: CampaignRecord,
    finals: bool,
    evidence: dict[str, FinalistEvidence],
    seeds: list[int] | None,
    failures: dict[str, str] | None = None,
) -> str:
    """Why the finals cannot be classified yet ('' when they can, or when there are none to wait for)."""
    if campaign.status == "failed":
        return "the campaign failed: " + ("; ".join((failures or {}).values()) or "see its runs")
    if campaign.status != "finished":
        half = "its search and finals" if finals else "its search"
        return f"the campaign is {campaign.status}: {half} may be half done"
    if not finals:
        return ""
    expected = set(seeds or ())
    short = [name for name, ev in evidence.items() if expected and not expected <= set(ev.test)]
    if short:
        return f"final runs are missing for {', '.join(short)} (expected seeds {sorted(expected)})"
    return ""


def collect_findings(source: str | Path | Ledger, campaign: int | str | None = None) -> CampaignFindings:
    """Read a campaign's ledger and classify its agent finalists (no training happens here).

    ``source`` is a campaign directory (its ``ledger.db``), a database URL (``campaign.storage=``) or an open
    ledger; ``campaign`` is the campaign's id or name (None: the only campaign there; in a directory's own
    ledger, the first). Nothing is classified while the finals are incomplete (a running or interrupted
    campaign, missing final runs): ``partial`` says why.
    """
    if isinstance(source, Ledger):
        return _collect(source, campaign)
    with closing(open_ledger(source)) as ledger:
        return _collect(ledger, campaign)


def _collect(ledger: Ledger, which: int | str | None) -> CampaignFindings:
    campaign = ledger.campaign(which) if isinstance(which, int) else find_campaign(ledger, which)
    control_candidates = ledger.candidates(campaign.id, arm="control")
    facts = _campaign_facts(campaign, control_candidates)
    finals_cfg = campaign.config.get("finals") or [True, 3]
    top_k = int(finals_cfg[1])
    hib = bool(facts["higher_is_better"])
    racing_seeds = [int(s) for s in campaign.config.get("racing_seeds") or ()]
    finalists = select_finalists(ledger, campaign.id, top_k, hib, racing_seeds=racing_seeds or None)
    runs = ledger.runs(campaign.id)
    histories = rung_histories([f.candidate for f in finalists], runs, racing_seeds) if racing_seeds else {}
    evidence = _evidence(finalists, runs)
    failures = arm_failures(ledger, campaign.id) if campaign.status == "failed" else {}
    partial = _incomplete(campaign, bool(finals_cfg[0]), evidence, facts["final_seeds"], failures)
    baseline = next((evidence[f.name] for f in finalists if f.role == "baseline"), None)
    control = next((evidence[f.name] for f in finalists if f.role == "control"), baseline)
    agents = [evidence[f.name] for f in finalists if f.role == "agent"]
    verdicts = (
        classify_all(agents, baseline, control, rules=facts["rules"], higher_is_better=hib)
        if baseline is not None and agents and not partial and finals_cfg[0]
        else []
    )
    candidates = ledger.candidates(campaign.id, arm="agent")
    counts = {
        "proposed": len(candidates),
        "rejected": sum(c.status == "rejected" for c in candidates),
        "duplicates": sum(c.status == "duplicate" for c in candidates),
        "failed": sum(c.status == "failed" for c in candidates),
        "run": sum(c.status in ("ok", "failed") for c in candidates),
    }
    budget = BudgetAccountant(ledger, campaign.id, {}).totals()
    return CampaignFindings(
        campaign.name,
        campaign.profile,
        campaign.agent,
        str(facts["metric"]),
        hib,
        finalists,
        evidence,
        verdicts,
        counts,
        budget,
        runs,
        facts["baseline"],
        dict(facts["control_space"]),
        facts["rules"],
        status=campaign.status,
        partial=partial,
        control_is_baseline=bool(finalists) and not any(f.role == "control" for f in finalists),
        agent_calls=_call_summary(ledger.llm_calls(campaign.id, arm="agent")),
        agent_stopped=next((t for _, _, t in reversed(ledger.notes(campaign.id, kind="stopped"))), ""),
        campaign_id=campaign.id,
        racing={f.name: histories[f.candidate.id] for f in finalists if f.candidate.id in histories},
        racing_seeds=racing_seeds,
    )


def _call_summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls by purpose, tokens, latency (total, median, max) and calls that got no answer."""
    if not calls:
        return {}
    latencies = sorted(float(c["latency_s"]) for c in calls)
    purposes: dict[str, int] = {}
    for c in calls:
        purposes[c["purpose"] or "?"] = purposes.get(c["purpose"] or "?", 0) + 1
    return {
        "calls": len(calls),
        "purposes": purposes,
        "prompt_tokens": sum(int(c["prompt_tokens"]) for c in calls),
        "completion_tokens": sum(int(c["completion_tokens"]) for c in calls),
        "latency_total_s": sum(latencies),
        "latency_median_s": latencies[len(latencies) // 2],
        "latency_max_s": latencies[-1],
        "unanswered": sum(bool(c["error"]) for c in calls),
    }


def _agent_lines(findings: CampaignFindings) -> list[str]:
    """The agent's model calls and early stop, when there is anything to say."""
    calls, lines = findings.agent_calls, []
    if calls:
        purposes = ", ".join(f"{k} {v}" for k, v in sorted(calls["purposes"].items()))
        lines += [
            "## Agent model calls (every call is in the ledger's afr_llm_calls table)",
            "",
            f"{calls['calls']} calls ({purposes}; {calls['unanswered']} without an answer), "
            f"{calls['prompt_tokens']} prompt + {calls['completion_tokens']} completion tokens; latency "
            f"{calls['latency_total_s']:.1f} s in all, median {calls['latency_median_s']:.1f} s, "
            f"max {calls['latency_max_s']:.1f} s.",
            "",
        ]
    if findings.agent_stopped:
        lines += [f"The agent arm stopped early: {findings.agent_stopped}.", ""]
    return lines


def _evidence(finalists: list[Finalist], runs: list[RunRecord]) -> dict[str, FinalistEvidence]:
    """Each finalist's parent-computed test and held-out metrics, by seed.

    A final run's ``test`` evaluation is the test split of the training clients; its ``heldout`` evaluation
    (held-out clients, which never trained) is the ``heldout_clients`` setting. A held-out setting's own
    runs (stage ``heldout``) carry the setting in their split.
    """
    test: dict[int, dict[int, float]] = defaultdict(dict)
    heldout: dict[int, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))

    def mean(run: RunRecord, part: str) -> float | None:
        values = (run.evaluation or {}).get(part) or {}
        return None if values.get("mean") is None else float(values["mean"])

    for run in runs:
        if run.stage == "final":
            if (value := mean(run, "test")) is not None:
                test[run.candidate_id][run.seed] = value
            if (value := mean(run, "heldout")) is not None:
                heldout[run.candidate_id]["heldout_clients"][run.seed] = value
        elif run.stage == "heldout":
            value = mean(run, "heldout") if mean(run, "heldout") is not None else mean(run, "test")
            if value is not None:
                heldout[run.candidate_id][run.split.removeprefix("heldout:")][run.seed] = value
    return {
        f.name: FinalistEvidence(
            name=f.name,
            arm=f.role,
            search_score=f.candidate.score,
            test=dict(test[f.candidate.id]),
            heldout={k: dict(v) for k, v in heldout[f.candidate.id].items()},
        )
        for f in finalists
    }


def _score(value: float | None) -> str:
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "—"


def closing_summary(
    findings: CampaignFindings, report: str | Path | None = None, failure: str = ""
) -> list[str]:
    """What a campaign found, in 3-5 console lines: each arm's best, the finals, each verdict, the report."""
    roles = {f.role: f for f in reversed(findings.finalists)}  # the first of each role: its best
    best = [
        f"{roles[role].name} {_score(roles[role].candidate.score)}"
        for role in ("agent", "control", "baseline")
        if role in roles
    ]
    ended = "FAILED" if failure or findings.status == "failed" else findings.status
    lines = [
        f"campaign {findings.name!r} {ended}: best search validation {findings.metric}: "
        + (" | ".join(best) or "no successful run")
    ]
    tested = [(n, ev) for n, ev in findings.evidence.items() if ev.test]
    if tested:
        seeds = max(len(ev.test) for _, ev in tested)
        lines.append(
            f"finals, test {findings.metric} over {seeds} paired seeds: "
            + ", ".join(f"{n} {_score(statistics.fmean(ev.test.values()))}" for n, ev in tested)
        )
    if findings.verdicts:
        lines.append(
            "verdicts: " + "; ".join(f"{v.name} {v.label} (rule {v.rule})" for v in findings.verdicts)
        )
    elif findings.partial:
        lines.append(f"verdicts: none (partial: {findings.partial[:300]})")
    else:
        lines.append("verdicts: none (no agent finalist with final runs; campaign.finals=false?)")
    if report is not None:
        lines.append(f"report: {report}")
    return lines


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


def write_report(
    campaign_dir: str | Path | None,
    output: str | Path | None = None,
    *,
    findings: CampaignFindings | None = None,
) -> Path:
    """Write ``report.md`` and its PNG plots into the campaign dir (or ``output``); return the path.

    Without ``findings`` they are read from the campaign dir's ledger; a campaign whose records are in a
    database gives its ``findings`` (:func:`collect_findings` on the URL) and an ``output`` or its dir."""
    if findings is None:
        if campaign_dir is None:
            raise ValueError("give the campaign dir or the findings")
        findings = collect_findings(campaign_dir)
    if output is None and campaign_dir is None:
        raise ValueError("give the campaign dir or the output path")
    out = Path(output) if output else Path(campaign_dir) / "report.md"  # type: ignore[arg-type]
    plots = out.parent / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    _plot_search_scores(findings, plots / "search_scores.png")
    _plot_finalist_curves(findings, plots / "finalist_curves.png")
    _plot_paired_seeds(findings, plots / "paired_seeds.png")
    _plot_budget_spend(findings, plots / "budget_spend.png")
    out.write_text("\n".join(_report_lines(findings)))
    return out


def _axes() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3.5))


def _search_runs(findings: CampaignFindings) -> list[RunRecord]:
    return [r for r in findings.runs if r.stage == "search" and r.status == "ok"]


def _plot_search_scores(findings: CampaignFindings, path: Path) -> None:
    """Per-arm validation score distributions: one point per search run."""
    fig, ax = _axes()
    search = _search_runs(findings)
    for i, arm in enumerate(("agent", "control")):
        scores = [
            r.final_metric for r in search if r.run_key.startswith(arm + "/") and r.final_metric is not None
        ]
        ax.scatter([i + 0.08 * ((j % 5) - 2) for j in range(len(scores))], scores, alpha=0.6, label=arm)
    ax.set_xticks([0, 1], ["agent", "control"])
    ax.set_ylabel(f"validation {findings.metric}")
    ax.set_title("Search: one point per FL run")
    _save(fig, path)


def _plot_finalist_curves(findings: CampaignFindings, path: Path) -> None:
    """Validation curves of the finalists' search runs."""
    fig, ax = _axes()
    search = _search_runs(findings)
    for f in findings.finalists:
        run = next((r for r in search if r.candidate_id == f.candidate.id), None)
        if run and run.per_round:
            rounds = [p["round"] for p in run.per_round if p.get("val") is not None]
            values = [p["val"] for p in run.per_round if p.get("val") is not None]
            ax.plot(rounds, values, marker=".", label=f.name)
    ax.set_xlabel("round")
    ax.set_ylabel(f"validation {findings.metric}")
    if ax.get_legend_handles_labels()[0]:  # nothing plotted (e.g. a failed campaign): no legend
        ax.legend(fontsize=7)
    _save(fig, path)


def _plot_paired_seeds(findings: CampaignFindings, path: Path) -> None:
    """Each finalist's test metric per final seed (the seeds are paired across finalists)."""
    fig, ax = _axes()
    for name, ev in findings.evidence.items():
        seeds = sorted(ev.test)
        ax.plot(range(len(seeds)), [ev.test[s] for s in seeds], marker="o", label=name)
        ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
    ax.set_xlabel("final seed (paired across finalists)")
    ax.set_ylabel(f"test {findings.metric}")
    if ax.get_legend_handles_labels()[0]:  # nothing plotted (e.g. a failed campaign): no legend
        ax.legend(fontsize=7)
    _save(fig, path)


def _plot_budget_spend(findings: CampaignFindings, path: Path) -> None:
    """FL runs charged over time, per account."""
    fig, ax = _axes()
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
    _save(fig, path)


def _report_lines(findings: CampaignFindings) -> list[str]:
    baseline = findings.baseline
    lines = [f"# AFR campaign report: {findings.name}", ""]
    if findings.partial:
        lines += [f"**Partial report: {findings.partial}. Nothing is classified.**", ""]
    lines += [
        f"Profile `{findings.profile}`, agent `{findings.agent}` against the scalar-only control (Optuna) "
        f"on the baseline `{baseline.get('class_name')}` (`{baseline.get('label')}`). "
        f"Metric: {findings.metric} ({'higher' if findings.higher_is_better else 'lower'} is better). "
        "Validation scores come from the search ("
        + (
            "first search seed; seed racing's further seeds below"
            if findings.racing_seeds
            else "one run each"
        )
        + "); test and held-out metrics from the finals "
        "(fresh paired seeds), computed by the parent process on returned weights. "
        f"Practical margin: {findings.rules.margin:g} {findings.metric} (a gain must exceed it).",
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
        *_agent_lines(findings),
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
    lines += _racing_lines(findings)
    lines += _changes_lines(findings)
    if findings.control_is_baseline:
        lines += [
            "The tuned control's best trial is the baseline itself (its default scalars scored best, or its "
            "best setting ran exactly as the defaults did), so "
            "the comparison with the control is the comparison with the baseline.",
            "",
        ]
    lines += ["## Classification of the agent's gains", ""]
    if findings.partial:
        lines.append(f"Not classified: {findings.partial}.")
    elif not findings.verdicts:
        lines.append("No agent finalist with final runs (the finals may be disabled: campaign.finals=false).")
    else:
        lines += _power_lines(findings)
    for verdict in findings.verdicts:
        lines += [f"### {verdict.name}: **{verdict.label}** (rule {verdict.rule})", ""]
        lines += [f"- {reason}" for reason in verdict.reasons]
        lines.append("")
    rows = survival_table(
        {findings.profile: findings.verdicts}, {findings.profile: findings.counts}, arm="agent"
    )
    lines += ["## Survival table", "", render_table_markdown(rows), ""]
    return lines


DIFF_LINES = 300
"""A finalist's diff is cut to this many lines in the report (its whole file is saved with its weights)."""


def _racing_lines(findings: CampaignFindings) -> list[str]:
    """Each finalist's rung history under seed racing (nothing when racing was off)."""
    if not findings.racing_seeds:
        return []
    seeds = ", ".join(map(str, findings.racing_seeds))
    lines = [
        "## Seed racing: each finalist's rungs (search seeds, validation scores, mean ± sd)",
        "",
        f"Search seeds by rung: {seeds}. Finalists rank by their mean over their seeds one standard error "
        "towards worse (their arm's seed-to-seed spread over the root of their seed count), then by rung; "
        "both arms were raced by the same rule.",
        "",
    ]
    lines += [f"- {name}: {history.line()}" for name, history in findings.racing.items()]
    return [*lines, ""]


def _mechanisms(findings: CampaignFindings, finalist: Finalist) -> str:
    """What a finalist changed, in words: the mechanisms an agent declared, or the scalars a trial tuned."""
    c = finalist.candidate
    if finalist.role == "baseline":
        return "none: the baseline recipe with its default scalars"
    if c.arm == "control":
        changed = []
        for name, value in sorted((c.scalars or {}).items()):
            spec = findings.control_space.get(name)
            default = f" (default {spec.default:g})" if spec is not None else ""
            changed.append(f"`{name}={value:.4g}`{default}")
        return "tuned scalars only: " + (", ".join(changed) or "none")
    declared = c.meta.get("mechanisms")
    if declared:
        return ", ".join(f"`{m}`" for m in declared)
    return "not declared by the agent (see its note and diff)"


def _changes_lines(findings: CampaignFindings) -> list[str]:
    """Each finalist's mechanisms, note, saved files and diff against the baseline."""
    if not findings.finalists:
        return []
    files: dict[int, dict[str, str]] = {}
    for run in findings.runs:
        if run.artifacts and "recipe" in run.artifacts:
            files.setdefault(run.candidate_id, run.artifacts)
    lines = ["## What each finalist changed (against the baseline)", ""]
    for f in findings.finalists:
        c = f.candidate
        lines += [f"### {f.name} ({f.role})", "", f"- mechanisms: {_mechanisms(findings, f)}"]
        if f.role == "agent":  # the control's finalists share the baseline's code: their niche is a setting
            lines.append(f"- niche: {f.niche.label}")
        note = " ".join(str(c.meta.get("note", "")).split())
        if note:
            lines.append(f"- the agent's note: {note}")
        saved = files.get(c.id)
        if saved:
            extra = f", scalars `{saved['scalars']}`" if "scalars" in saved else ""
            lines.append(f"- saved with its weights: recipe `{saved['recipe']}`{extra}")
        diff = c.diff.rstrip("\n").splitlines()
        if not diff:
            lines += ["- diff: none (the baseline file itself)", ""]
            continue
        shown = diff[:DIFF_LINES]
        cut = f" (first {DIFF_LINES} of {len(diff)} lines)" if len(diff) > DIFF_LINES else ""
        lines += [
            "",
            f"<details><summary>diff against the baseline: {len(diff)} lines{cut}</summary>",
            "",
            "```diff",
            *shown,
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def _power_lines(findings: CampaignFindings) -> list[str]:
    """Every comparison's seeds, observed mean, minimum detectable effect and whether it was powered."""
    lines = [
        f"Each comparison tests a gain above the margin {findings.rules.margin:g} (held-out: a loss of at "
        f"most the margin) with a one-sided paired t-test, {findings.rules.correction}-corrected over the "
        f"finalists; MDE = margin + the smallest further gain found {findings.rules.power:.0%} of the time "
        "at alpha / finalists; powered = the observed mean reaches the MDE.",
        "",
        "| finalist | against | n | mean difference | MDE | powered | corrected p |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for verdict in findings.verdicts:
        numbers = verdict.numbers
        comparisons = [("baseline (test)", numbers["vs_baseline"])]
        if numbers["vs_control"] is not None:
            comparisons.append(("control (test)", numbers["vs_control"]))
        for setting, values in numbers["heldout"]["settings"].items():
            comparisons.append((f"{numbers['heldout']['reference']} ({setting}, non-inferiority)", values))
        for against, c in comparisons:
            lines.append(
                f"| {verdict.name} | {against} | {c['n']} | {c['mean']:+.4f} | {c['mde']:.4f} | "
                f"{'yes' if c['powered'] else 'no'} | {c['p_corrected']:.4g} |"
            )
    return [*lines, ""]


def render_worked_example(source: str | Path | Ledger, campaign: int | str | None = None) -> str:
    """``docs/worked_example.md``: how the control baseline is built and one candidate's path to its verdict.

    Everything comes from the campaign's ledger; candidates go by their one name (``agent#30``: the ledger
    numbers them in the same order on every machine) and no timings are printed, so a seeded campaign
    gives the same text on every run.
    """
    if not isinstance(source, Ledger):
        with closing(open_ledger(source)) as ledger:
            return render_worked_example(ledger, campaign)
    findings = collect_findings(source, campaign)
    lines = _worked_baseline(findings) + _worked_control(findings, source)
    verdict = findings.verdicts[0] if findings.verdicts else None
    if verdict is None:
        lines += ["", "No agent finalist was classified (finals were not run)."]
        return "\n".join(lines) + "\n"
    lines += _worked_candidate(findings, source, verdict)
    return "\n".join(lines)


def _worked_baseline(findings: CampaignFindings) -> list[str]:
    """Sections 1-3: the baseline recipe, its scalar space, the budgets."""
    lines = [
        "# Worked example: the control baseline and one candidate's path through the protocol",
        "",
        "<!-- Generated by `python -m afr.report <campaign> --worked-example` from the campaign of "
        "`tests/test_worked_example.py` (see its COMMAND). Do not edit by hand; the test fails when "
        "stale. -->",
        "",
        f"Campaign `{findings.name}` on profile `{findings.profile}`: agent `{findings.agent}` against the "
        f"scalar-only control. Metric: {findings.metric} "
        f"({'higher' if findings.higher_is_better else 'lower'} is better). Candidates are named as on "
        "the console, in the report, in TensorBoard and on the Optuna dashboard: `agent#<id>`, "
        "`control#<id>`, and `baseline#<id>` for the control's trial 0 (the ledger's candidate id).",
        "",
        f"## 1. The baseline recipe (`{findings.baseline.get('label')}`)",
        "",
        "```python",
        str(findings.baseline.get("source", "")).rstrip("\n"),
        "```",
        "",
        "## 2. Its declared scalar space (the only thing the control arm may tune)",
        "",
        "| scalar | default (this profile) | low | high | scale |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{n}` | {s.default:g} | {s.low:g} | {s.high:g} | {'log' if s.log else 'linear'} |"
        for n, s in findings.control_space.items()
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
    return lines


def _worked_control(findings: CampaignFindings, ledger: Ledger) -> list[str]:
    """Section 4: the control arm's trials and its best."""
    campaign = ledger.campaign(findings.campaign_id)
    control = ledger.candidates(campaign.id, arm="control")
    best = ledger.best_candidates(campaign.id, "control", 1, higher_is_better=findings.higher_is_better)
    lines = [
        "",
        "## 4. The control arm's trials",
        "",
        "| trial | candidate | scalars | validation |",
        "|---|---|---|---|",
    ]
    for c in sorted(control, key=_trial_number):
        scalars = ", ".join(f"{k}={v:.4g}" for k, v in sorted((c.scalars or {}).items()))
        score = f"{c.score:.4f}" if c.score is not None else c.status
        lines.append(f"| {_trial_number(c)} | `{c.name}` | {scalars} | {score} |")
    if best:
        lines += ["", f"Best control trial: `{best[0].name}` ({best[0].score:.4f})."]
    return lines


def _trial_number(c: CandidateRecord) -> int:
    return int(str(c.meta.get("proposal_key", "control-0")).split("-")[1])


def _worked_candidate(findings: CampaignFindings, ledger: Ledger, verdict: Verdict) -> list[str]:
    """Sections 5-6: the agent's best finalist, its diff, its paired seeds and its path through the rules."""
    finalist = next(f for f in findings.finalists if f.name == verdict.name)
    candidate = finalist.candidate
    ev = findings.evidence[verdict.name]
    lines = [
        "",
        f"## 5. One candidate: `{candidate.name}` (the agent's best by validation)",
        "",
        f"What the agent said it did: {candidate.meta.get('note', '—')}",
        "",
        f"Its mechanisms: {_mechanisms(findings, finalist)}.",
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
        label = f"`{name}` ({other.arm})"
        lines.append(
            f"| {label} | "
            + " | ".join(f"{other.test.get(s, float('nan')):.4f}" for s in sorted(ev.test))
            + " |"
        )
    lines += ["", f"Verdict: **{verdict.label}** (decided by rule {verdict.rule}).", ""]
    lines += [f"{i}. {reason}" for i, reason in enumerate(verdict.reasons, 1)]
    lines += ["", "The rules, thresholds and the statistical test are in `docs/classification.md`.", ""]
    return lines
