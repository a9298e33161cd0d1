"""Search diversity: renamed copies are duplicates (never run or charged, resume of legacy ledgers too),
evolve keeps a diversity archive, and finalists are distinct mechanisms (both arms: distinct curves)."""

from __future__ import annotations

import re
from pathlib import Path

import afr.agents as agents_module
from afr.agents.evolve import EvolveAgent, niche
from afr.agents.mechanisms import MECHANISMS, Gene, Genome, write_recipe
from afr.budget import ArmBudget
from afr.campaign import Campaign, CandidateRunner, RunnerSettings
from afr.evaluation import select_finalists
from afr.ledger import Ledger
from afr.profiles import load_profile_config, make_profile
from afr.recipe._niche import recipe_niche
from afr.surface import legacy_ast_hash
from tests.test_campaign import settings
from tests.test_evolve import CONFIG, env_for, fake_history, make_ctx


def genome(*genes: str, **values: float) -> Genome:
    out = Genome()
    for token in genes:
        key, _, variant = token.partition("=")
        out = out.with_gene(Gene(key, variant), MECHANISMS[key].slot)
    return out.with_values(values)


def evolve_file(*genes: str, **values: float) -> str:
    return write_recipe(None, genome(*genes, **values), env_for("synthetic"))


def renamed(source: str) -> str:
    """The same recipe with its class, a parameter and its locals renamed."""
    out = source.replace("class Evolved(", "class MyOwnName(")
    for old, new in (
        ("delta", "mean_step"),
        ("velocity", "v_state"),
        ("zeros", "z"),
        ("updates", "client_ups"),
    ):
        out = re.sub(rf"(?<![\"'])\b{old}\b(?![\"'])", new, out)
    return out


MOMENTUM = evolve_file("server_momentum")


# --- de-duplication up to renaming -------------------------------------------------------------------


def test_renamed_copy_is_a_duplicate_and_a_legacy_ledger_still_matches(tmp_path: Path) -> None:
    copy = renamed(MOMENTUM)
    assert copy != MOMENTUM and "class MyOwnName(" in copy and "client_ups" in copy
    cfg = load_profile_config("synthetic")
    runner = CandidateRunner(
        tmp_path / "c",
        name="dedup",
        profile=make_profile("synthetic", cfg),
        agent="scripted",
        limits={"agent": ArmBudget(5, 10**9), "control": ArmBudget(5, 10**9), "finals": ArmBudget(0, 0)},
        settings=RunnerSettings(workers=1),
    )
    with runner:
        first = runner.propose("agent", "scripted", MOMENTUM, proposal_key="a-0")
        assert first.status == "accepted" and first.ast_hash.startswith("v2:")
        again = runner.propose("agent", "scripted", copy, proposal_key="a-1")
        assert (again.status, again.duplicate_of) == ("duplicate", first.id)
        # A ledger written before renaming was ignored stores the legacy hash: a renamed copy and an exact
        # copy of that candidate are still duplicates on resume.
        runner.ledger.update_candidate(first.id, ast_hash=legacy_ast_hash(MOMENTUM))
        runner.ledger.update_candidate(
            again.id, ast_hash=legacy_ast_hash(copy), status="accepted", duplicate_of=None
        )
        resumed = CandidateRunner(
            tmp_path / "c",
            name="dedup",
            profile=runner.profile,
            agent="scripted",
            limits=runner.accountant.limits,
            settings=RunnerSettings(workers=1),
        )
        later = resumed.propose(
            "agent", "scripted", renamed(MOMENTUM).replace("MyOwnName", "Third"), proposal_key="a-2"
        )
        assert (later.status, later.duplicate_of) == ("duplicate", first.id)
        exact = resumed.propose("agent", "scripted", MOMENTUM, proposal_key="a-3")
        assert (exact.status, exact.duplicate_of) == ("duplicate", first.id)
        other = resumed.propose(
            "agent", "scripted", evolve_file("server_momentum", server_momentum=0.5), proposal_key="a-4"
        )
        assert other.status == "accepted", "another scalar value is another candidate"
        # A proposal key recorded by another runner of the campaign (an arm thread, a shared campaign's
        # process) after this one last looked is still found: the same key returns that row, never a second.
        theirs = runner.propose("agent", "scripted", evolve_file("prox"), proposal_key="b-0")
        mine = resumed.propose("agent", "scripted", evolve_file("fednova"), proposal_key="b-0")
        assert mine.id == theirs.id and mine.source == theirs.source
        assert resumed.propose("agent", "scripted", MOMENTUM, proposal_key="a-0").id == first.id


# --- the diversity archive ---------------------------------------------------------------------------


def test_evolve_archive_samples_parents_across_niches() -> None:
    """A lineage of clones tops the history: without the archive every parent is a clone, with it the
    other niches are parents too."""
    clones = [genome("server_momentum", server_momentum=b) for b in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4)]
    others = [genome("prox"), genome("lr_schedule=cosine"), genome("trimmed_mean"), genome("fednova")]
    files = [write_recipe(None, g, env_for("synthetic")) for g in (*clones, *others)]
    from afr.agents import Proposal

    scores = [0.90, 0.89, 0.88, 0.87, 0.86, 0.85, 0.70, 0.69, 0.68, 0.67]
    history = fake_history([Proposal(f) for f in files], scores)
    niches = {item.candidate_id: niche(g) for item, g in zip(history, (*clones, *others), strict=True)}

    def parent_niches(archive: bool) -> list[frozenset[str]]:
        settings = {**CONFIG, "archive": archive, "explore_rate": 0.0, "initial_population": 4}
        agent = EvolveAgent(settings, seed=5)
        made = []
        for step in range(10, 70, 6):
            made += agent.propose(make_ctx(baseline_score=0.5, history=history, step=step), 6)
        return [niches[p.parent_id] for p in made if p.parent_id is not None]

    without, with_archive = parent_niches(False), parent_niches(True)
    lineage = niches[history[0].candidate_id]
    assert set(without) == {lineage}, "control: without the archive the clones are the whole population"
    assert len(set(with_archive)) >= 3, set(with_archive)
    assert with_archive.count(lineage) < len(with_archive)


# --- distinct finalists ------------------------------------------------------------------------------


def _scored(
    ledger: Ledger, cid: int, arm: str, source: str, score: float, curve: list[float], key: str, **kw
):
    cand = ledger.add_candidate(
        cid, arm=arm, agent="x", source=source, diff="", ast_hash=key, meta={"proposal_key": key}, **kw
    )
    run = ledger.start_run(cid, cand, f"{arm}/{key}", 0, "search", "val")
    ledger.finish_run(
        run,
        status="ok",
        per_round=[{"round": i, "val": v} for i, v in enumerate(curve)],
        final_metric=curve[-1],
    )
    ledger.update_candidate(cand, status="ok", score=score)
    return cand


def test_finalists_are_distinct_mechanisms_and_distinct_curves(tmp_path: Path) -> None:
    ledger = Ledger.for_campaign_dir(tmp_path)
    cid = ledger.start_campaign("f", "synthetic", "x", {})
    llm = (
        "from afr.recipe import FedAvg\n\n"
        "class Mine(FedAvg):\n    def client_lr(self, r, c):\n        return 0.1\n"
    )
    a1 = _scored(ledger, cid, "agent", MOMENTUM, 0.90, [0.5, 0.90], "a1")
    _scored(
        ledger, cid, "agent", evolve_file("server_momentum", server_momentum=0.5), 0.89, [0.5, 0.89], "a2"
    )
    _scored(ledger, cid, "agent", llm, 0.88, [0.5, 0.90], "a4")  # behaves as a1
    # behaves as a2 (a1's clone): a clone of a clone is the same idea
    _scored(ledger, cid, "agent", evolve_file("server_momentum", "l2"), 0.87, [0.5, 0.89], "a5")
    a3 = _scored(ledger, cid, "agent", evolve_file("prox"), 0.80, [0.4, 0.80], "a3")
    base = _scored(ledger, cid, "control", "baseline", 0.70, [0.3, 0.70], "control-0", scalars={"lr": 0.01})
    _scored(ledger, cid, "control", "baseline", 0.70, [0.3, 0.70], "control-1", scalars={"lr": 0.02})
    finalists = select_finalists(ledger, cid, 3, higher_is_better=True)
    assert [(f.role, f.candidate.id) for f in finalists] == [("agent", a1), ("agent", a3), ("baseline", base)]
    assert [f.niche.mechanisms for f in finalists[:2]] == [("server_momentum",), ("prox",)]
    # a control trial that behaves differently from the baseline is the control's finalist
    best = _scored(ledger, cid, "control", "baseline", 0.75, [0.3, 0.75], "control-2", scalars={"lr": 0.03})
    assert [f.candidate.id for f in select_finalists(ledger, cid, 3, True) if f.role == "control"] == [best]


def test_recipe_niche_reads_hooks_and_declared_mechanisms() -> None:
    both = recipe_niche(evolve_file("server_adam", "prox"))
    assert both.mechanisms == ("prox", "server_adam") and "aggregate" in both.hooks
    assert "local_objective" in both.hooks and "mechanisms prox, server_adam" in both.label
    plain = recipe_niche(
        "class A:\n    def client_lr(self, r, c):\n        return 1\n    def helper(self):\n        pass\n"
    )
    assert (plain.hooks, plain.mechanisms, plain.label) == (("client_lr",), None, "hooks client_lr")
    assert recipe_niche("def (").hooks == ()


# --- end to end ---------------------------------------------------------------------------------------


def test_campaign_with_clones_ends_with_distinct_finalists_and_runs_no_renamed_copy(
    tmp_path, monkeypatch
) -> None:
    harmful = evolve_file("lr_schedule=step")
    sources = [MOMENTUM, evolve_file("server_momentum", server_momentum=0.8), renamed(MOMENTUM), harmful]
    monkeypatch.setitem(agents_module.AGENT_KINDS, "scripted", "tests._scripted_agent:ScriptedAgent")
    cfg = {"kind": "scripted", "name": "scripted", "sources": sources}
    run_settings = settings(tmp_path / "c", cfg, runs=3, top_k=2, final_seeds=2, heldout_seeds=1)
    result = Campaign(run_settings, echo=lambda _: None).run()
    ledger = Ledger.for_campaign_dir(tmp_path / "c")
    agent = ledger.candidates(result.campaign_id, arm="agent")
    assert [c.status for c in agent] == ["ok", "ok", "duplicate", "ok"]
    copy = agent[2]
    assert copy.duplicate_of == agent[0].id
    assert not ledger.runs(result.campaign_id, candidate_id=copy.id), "a duplicate is never run"
    charged = [r for r in ledger.runs(result.campaign_id, stage="search") if r.run_key.startswith("agent/")]
    assert len(charged) == 3 == result.spent["agent"].runs
    finalists = [f for f in select_finalists(ledger, result.campaign_id, 2, True) if f.role == "agent"]
    mechanisms = [f.niche.mechanisms for f in finalists]
    assert len(finalists) == 2 and len(set(mechanisms)) == 2, mechanisms
    report = (tmp_path / "c" / "report.md").read_text()
    for f in finalists:
        assert f"- niche: {f.niche.label}" in report
    # The test bites: by search score alone the two momentum clones would take both slots.
    ranked = sorted((c for c in agent if c.score is not None), key=lambda c: -c.score)
    assert [recipe_niche(c.source).mechanisms for c in ranked[:2]] == [("server_momentum",)] * 2
    assert finalists[1].candidate.id == agent[3].id
