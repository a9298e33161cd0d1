"""The offline evolve agent: its mechanism library, the files it writes, and its evolutionary rule."""

from __future__ import annotations

import ast
import difflib
import math
import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import yaml

import afr.agents.evolve as evolve_module
import afr.agents.mechanisms as mechanisms_module
from afr.agents import AgentContext, HistoryItem, Proposal, make_agent
from afr.agents.evolve import EvolveAgent
from afr.agents.mechanisms import (
    MECHANISMS,
    SLOTS,
    Gene,
    Genome,
    Mechanism,
    environment,
    normalise_source,
    read_genome,
    write_recipe,
)
from afr.agents.mechanisms._base import register
from afr.engine import run_federation
from afr.profiles import make_profile
from afr.recipe import FedAvg, RecipeSource, Scalar, recipe_source
from afr.surface import render_profile_surface, surface_table, validate

ROOT = Path(__file__).resolve().parents[1]
BASELINE_SOURCE = (ROOT / "afr" / "recipe" / "fedavg.py").read_text()
CONFIG = yaml.safe_load((ROOT / "afr" / "conf" / "agent" / "evolve.yaml").read_text())
PROFILES = ("heart_disease", "tcga_brca", "synthetic")


@cache
def context_texts(profile: str) -> tuple[str, str, bool, str]:
    """(profile description YAML, surface doc, higher_is_better, metric), as the campaign builds them."""
    p = make_profile(profile)
    return (
        yaml.safe_dump(p.describe(), sort_keys=False),
        render_profile_surface(profile),
        p.higher_is_better,
        p.metric_name,
    )


def make_ctx(profile: str = "synthetic", **changes) -> AgentContext:
    description, surface, higher, metric = context_texts(profile)
    fields = {
        "profile_name": profile,
        "profile_description": description,
        "surface_doc": surface,
        "higher_is_better": higher,
        "metric": metric,
    }
    fields.update(changes)
    return AgentContext(**fields)


@cache
def env_for(profile: str):
    description, surface, _, _ = context_texts(profile)
    return environment(profile, description, surface, CONFIG)


def load_class(source: str) -> type[FedAvg]:
    namespace: dict = {"__name__": "candidate"}
    exec(compile(source, "candidate.py", "exec"), namespace)
    found = [
        v for v in namespace.values() if isinstance(v, type) and issubclass(v, FedAvg) and v is not FedAvg
    ]
    assert len(found) == 1, found
    return found[0]


@cache
def tiny_synthetic():
    profile = make_profile("synthetic", rounds=2, local_steps=5)
    profile.data("fit")  # load once
    return profile


def check_runs(source: str) -> None:
    profile = tiny_synthetic()
    result = run_federation(profile, profile.make_recipe(load_class(source)), seed=0)
    assert len(result.curve) == 2 and math.isfinite(result.final_val)


def check_valid(source: str, profiles=PROFILES) -> None:
    assert max(len(line) for line in source.splitlines()) <= 110, "generated lines stay readable"
    for profile in profiles:
        report = validate(source, surface_table(profile))
        assert report.ok, f"{profile}:\n{report}\n{source}"


def all_single_genes() -> list[Gene]:
    env = env_for("synthetic")
    return env.options()


# --- the library --------------------------------------------------------------------------------------


def test_library_has_at_least_twelve_mechanisms():
    assert len(MECHANISMS) >= 12
    assert {
        "server_momentum",
        "server_adam",
        "server_yogi",
        "server_adagrad",
        "prox",
        "scaffold",
        "fednova",
        "trimmed_mean",
        "median",
        "lr_schedule",
        "step_schedule",
        "l2",
        "model_variant",
        "sample_weighting",
        "client_sampling",
    } <= set(MECHANISMS)


def test_the_registry_is_in_slot_order_and_every_slot_has_a_mechanism():
    """Each family module registers its own mechanisms; the library's order (options, first generation,
    the genes of a Mechanisms line) is SLOTS' whatever the order the modules are imported in."""
    assert tuple(dict.fromkeys(m.slot for m in MECHANISMS.values())) == SLOTS
    # within a slot, the family module's declaration order
    assert [k for k, m in MECHANISMS.items() if m.slot == "server"] == [
        "server_momentum",
        "server_adam",
        "server_yogi",
        "server_adagrad",
    ]
    with pytest.raises(ValueError, match="unknown slot 'nope'"):
        register(Mechanism("made_up", "nope", ("aggregate",), "Made up."))
    with pytest.raises(ValueError, match="'prox' is registered twice"):
        register(MECHANISMS["prox"])
    assert "made_up" not in MECHANISMS and len(MECHANISMS) == 16


@pytest.mark.parametrize("gene", all_single_genes(), ids=lambda g: g.token)
def test_each_mechanism_alone_validates_and_runs(gene: Gene):
    genome = Genome().with_gene(gene, gene.slot)
    for profile in PROFILES:
        source = write_recipe(BASELINE_SOURCE, genome, env_for(profile))
        check_valid(source, (profile,))
        assert read_genome(source) == Genome(genome.genes, read_genome(source).values)
        compile(source, "candidate.py", "exec")
    source = write_recipe(None, genome, env_for("synthetic"))
    check_valid(source)
    check_runs(source)


def test_generated_file_is_tidy_and_self_describing():
    env = env_for("tcga_brca")
    genome = Genome((Gene("server_yogi"), Gene("prox"), Gene("lr_schedule", "cosine")))
    source = write_recipe(None, genome, env)
    lines = source.splitlines()
    assert max(len(line) for line in lines) <= 110
    assert not any(line != line.rstrip() for line in lines), "trailing whitespace"
    assert "\t" not in source and "\n\n\n\n" not in source
    assert source.count("class ") == 1 and "(FedAvg):" in source
    assert "Mechanisms: server_yogi(beta1, beta2, tau), prox(mu), lr_schedule=cosine(lr_min_ratio)" in source
    assert "lr = scalar(0.1, 0.0001, 1, log=True)" in source  # the profile's baseline default and range
    tree = ast.parse(source)
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "afr.recipe", "torch", "math", "typing", "collections.abc"}


def test_genome_round_trips_and_mutating_a_parent_file_keeps_its_state():
    env = env_for("synthetic")
    parent = Genome((Gene("server_momentum"), Gene("trimmed_mean")), {"lr": 0.05, "trim_fraction": 0.3})
    parent_source = write_recipe(None, parent, env)
    read = read_genome(parent_source)
    assert read.genes == parent.genes
    assert read.values["lr"] == 0.05 and read.values["trim_fraction"] == 0.3
    child = read.with_gene(Gene("prox"), "prox")
    child_source = write_recipe(parent_source, child, env)
    again = read_genome(child_source)
    assert again.tokens == ("server_momentum", "trimmed_mean", "prox")
    assert again.values["lr"] == 0.05 and again.values["trim_fraction"] == 0.3 and again.values["mu"] == 0.01
    # removing a mechanism removes its hook code and its scalars
    back = write_recipe(child_source, again.with_gene(None, "prox"), env)
    assert "mu = scalar" not in back and "proximal_term" not in back
    assert normalise_source(back) == normalise_source(parent_source)
    # composition re-renders hooks: one aggregate, one local_objective, never stacked overrides
    full = again.with_gene(Gene("scaffold"), "scaffold").with_gene(Gene("l2"), "l2")
    source = write_recipe(child_source, full, env)
    assert source.count("def aggregate(") == 1 and source.count("def local_objective(") == 1
    check_valid(source)
    check_runs(source)


@pytest.mark.parametrize("server", ["server_momentum", "server_yogi", "server_adagrad"])
def test_every_slot_at_once_composes(server: str):
    """One mechanism in every slot: aggregate and local_objective are each rendered once, and run."""
    env = env_for("synthetic")
    genes = {g.slot: g for g in env.options()}  # the last option of each slot
    genes["server"] = Gene(server)
    genome = Genome()
    for slot, gene in genes.items():
        genome = genome.with_gene(gene, slot)
    source = write_recipe(None, genome, env)
    assert len(read_genome(source).genes) == len(genes)
    assert source.count("def aggregate(") == 1 and source.count("def local_objective(") == 1
    check_valid(source)
    check_runs(source)


# --- the agent -----------------------------------------------------------------------------------------


def fake_history(proposals: list[Proposal], scores, start: int = 1, status: str = "ok") -> tuple:
    return tuple(
        HistoryItem(start + i, status, score, p.source, "", parent_id=p.parent_id, note=p.note)
        for i, (p, score) in enumerate(zip(proposals, scores, strict=True))
    )


def run_fake_search(agent: EvolveAgent, profile: str, steps: int, per_step: int, score_fn) -> list[Proposal]:
    history: tuple = ()
    made: list[Proposal] = []
    for _ in range(steps):
        ctx = make_ctx(profile, baseline_score=0.5, history=history, step=len(history))
        proposals = agent.propose(ctx, per_step)
        assert proposals
        history = history + fake_history(proposals, [score_fn(p) for p in proposals], start=len(history) + 1)
        made.extend(proposals)
    return made


def test_thirty_random_compositions_validate_and_run():
    agent = EvolveAgent(CONFIG, seed=3)

    def score(p: Proposal) -> float:  # a fake landscape: more mechanisms score higher
        return 0.5 + 0.05 * len(p.meta["mechanisms"]) + 0.001 * (len(p.source) % 7)

    made = run_fake_search(agent, "synthetic", steps=12, per_step=4, score_fn=score)
    composed = [p for p in made if len(p.meta["mechanisms"]) >= 2]
    assert len(composed) >= 30, [p.meta["mechanisms"] for p in made]
    assert len({normalise_source(p.source) for p in made}) == len(made), "a file was proposed twice"
    for proposal in composed[:30]:
        check_valid(proposal.source)
        check_runs(proposal.source)
        assert proposal.note


def test_first_generation_is_single_mechanisms_on_the_baseline():
    agent = EvolveAgent(CONFIG, seed=0)
    proposals = agent.propose(make_ctx(), 8)
    assert len(proposals) == 8
    assert all(p.parent_id is None and len(p.meta["mechanisms"]) == 1 for p in proposals)
    assert len({p.meta["mechanisms"][0].split("=")[0] for p in proposals}) == 8  # diverse
    # the next call continues the same order without repeating what the history holds
    history = fake_history(proposals[:2], [None, None], status="failed")
    more = agent.propose(make_ctx(history=history, step=2), 6)
    assert [p.source for p in more] == [p.source for p in proposals[2:8]]


@pytest.mark.parametrize("profile", PROFILES)
def test_first_generation_fills_every_slot_once_before_evolving(profile: str):
    """By default the first generation is one single mechanism per slot of the library (each niche of the
    archive once), and children come only once all of them have a score."""
    env = env_for(profile)
    slots = {g.slot for g in env.options()}
    agent = EvolveAgent(CONFIG, seed=3)
    first = agent.propose(make_ctx(profile), len(slots))
    assert all(p.parent_id is None and p.meta["operator"] == "single" for p in first)
    genes = [read_genome(p.source).genes for p in first]
    assert all(len(g) == 1 for g in genes)
    assert {g[0].slot for g in genes} == slots  # every slot, none twice
    # all but one scored: still singles (a second mechanism of some slot), not children
    higher = make_ctx(profile).higher_is_better
    scores = [0.5 + 0.01 * i * (1 if higher else -1) for i in range(len(first))]
    history = fake_history(first[:-1], scores[:-1])
    more = agent.propose(make_ctx(profile, baseline_score=0.5, history=history, step=len(first)), 3)
    assert all(p.meta["operator"] == "single" for p in more)
    # every slot scored: the next proposals are children of scored parents (explore_rate off)
    evolving = EvolveAgent({**CONFIG, "explore_rate": 0.0}, seed=3)
    history = fake_history(first, scores)
    children = evolving.propose(make_ctx(profile, baseline_score=0.5, history=history, step=len(first)), 6)
    assert children and all(p.meta["operator"] != "single" for p in children)


def test_determinism_same_seed_same_proposals_different_seed_differs():
    made = []
    for seed in (7, 7, 8):
        agent = make_agent(CONFIG, seed=seed)
        first = agent.propose(make_ctx(), 4)
        history = fake_history(first, [0.6, 0.7, 0.55, 0.65])
        second = agent.propose(make_ctx(baseline_score=0.5, history=history, step=4), 4)
        made.append([(p.source, p.parent_id, p.note) for p in first + second])
    assert made[0] == made[1]
    assert made[0] != made[2]


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_selection_prefers_the_much_better_candidate(higher_is_better: bool):
    agent = EvolveAgent({**CONFIG, "initial_population": 8}, seed=1)
    singles = agent.propose(make_ctx(), 8)
    good, bad = (0.95, 0.3) if higher_is_better else (0.05, 0.7)
    scores = [bad + 0.01 * i * (1 if higher_is_better else -1) for i in range(8)]
    best_index = 5
    scores[best_index] = good
    history = fake_history(singles, scores)
    best_id = history[best_index].candidate_id
    children = []
    for step in range(8, 8 + 10 * 6, 6):
        ctx = make_ctx(baseline_score=bad, history=history, step=step, higher_is_better=higher_is_better)
        children += agent.propose(ctx, 6)
    # about 0.7 of children by the rule (elite 0.2, else a tournament of 3 among 4 elites or a random niche)
    shares = Counter(p.parent_id for p in children)
    share = shares.pop(best_id, 0) / len(children)
    assert share >= 0.6, share
    assert all(n / len(children) <= share / 3 for n in shares.values()), (share, shares)


def test_failed_mechanism_sets_are_not_proposed_again():
    agent = EvolveAgent(CONFIG, seed=2)
    singles = agent.propose(make_ctx(), 6)
    failed = fake_history(singles[:3], [None, None, None], status="failed")
    ok = fake_history(singles[3:], [0.6, 0.7, 0.8], start=4)
    bad_sets = {frozenset(p.meta["mechanisms"]) for p in singles[:3]}
    history = failed + ok
    for step in (6, 12, 18):
        for p in agent.propose(make_ctx(baseline_score=0.5, history=history, step=step), 6):
            assert frozenset(p.meta["mechanisms"]) not in bad_sets
            assert p.parent_id not in {1, 2, 3}


def test_perturbation_stays_in_range():
    settings = {**CONFIG, "operators": {"perturb": 1.0}, "explore_rate": 0.0, "initial_population": 4}
    agent = EvolveAgent(settings, seed=4)
    singles = agent.propose(make_ctx("tcga_brca"), 4)
    history = fake_history(singles, [0.6, 0.7, 0.8, 0.65])
    env = env_for("tcga_brca")
    for step in range(4, 40, 6):
        for p in agent.propose(make_ctx("tcga_brca", history=history, step=step), 6):
            assert p.meta["operator"] == "perturb"
            genome = read_genome(p.source)
            for key, spec in env.specs(genome).items():
                assert spec.low <= genome.values[key] <= spec.high


def test_bare_context_and_config_overrides():
    """Empty description and surface text: safe fallbacks; the config can restrict the library."""
    ctx = make_ctx(profile_description="", surface_doc="")
    for p in EvolveAgent(CONFIG, seed=0).propose(ctx, 6):
        check_valid(p.source)
    restricted = {**CONFIG, "mechanisms": ["prox", "server_adam"], "model_variants": ["default", "mlp"]}
    proposals = EvolveAgent(restricted, seed=0).propose(make_ctx(), 6)
    assert sorted(p.meta["mechanisms"][0] for p in proposals[:2]) == ["prox", "server_adam"]
    assert all(set(p.meta["mechanisms"]) <= {"prox", "server_adam"} for p in proposals)
    env = environment("synthetic", "", "", {"model_variants": ["default", "wide"]})
    assert env.model_variants == ("wide",) and env.horizon == 20


def test_agent_modules_import_nothing_forbidden():
    forbidden = ("afr.engine", "afr.sandbox", "afr.ledger", "afr.budget", "afr.surface")
    for module in (evolve_module, mechanisms_module):
        tree = ast.parse(Path(module.__file__).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = "afr.agents" if node.level == 1 else ("afr" if node.level == 2 else "")
                mod = node.module or ""
                names = [f"{base}.{mod}".strip(".") if node.level else mod]
                if node.level and not mod:
                    names = [f"{base}.{a.name}" for a in node.names]
            for name in names:
                assert not name.startswith(forbidden), f"{module.__name__} imports {name}"


# --- a mini search on real data ------------------------------------------------------------------------


def test_mini_search_beats_fedavg_on_tcga_brca(shared_data):
    started = time.perf_counter()
    profile = make_profile("tcga_brca", data_dir=shared_data)
    baseline = run_federation(profile, profile.make_recipe(FedAvg), seed=0, stage="search").final_val
    agent = EvolveAgent(CONFIG, seed=0)
    history: tuple = ()
    runs = 0
    while runs < 24:
        ctx = make_ctx("tcga_brca", baseline_score=baseline, history=history, step=len(history))
        for proposal in agent.propose(ctx, 4):
            try:
                cls = load_class(proposal.source)
                score = run_federation(profile, profile.make_recipe(cls), seed=0, stage="search").final_val
                status = "ok" if math.isfinite(score) else "failed"
            except Exception as exc:  # a failed run is information for the agent, not a test error
                score, status = None, "failed"
                print("failed:", proposal.meta["mechanisms"], exc)
            runs += 1
            item = HistoryItem(
                len(history) + 1,
                status,
                score if status == "ok" else None,
                proposal.source,
                "",
                parent_id=proposal.parent_id,
                note=proposal.note,
            )
            history = history + (item,)
    scored = [h for h in history if h.status == "ok"]
    best = max(scored, key=lambda h: h.score)
    diff = "".join(
        difflib.unified_diff(
            BASELINE_SOURCE.splitlines(keepends=True),
            best.source.splitlines(keepends=True),
            fromfile="baseline/fedavg.py",
            tofile=f"candidate/{best.candidate_id}.py",
        )
    )
    print(f"\nFedAvg val C-index {baseline:.4f}; best candidate #{best.candidate_id} {best.score:.4f}")
    print(f"{runs} runs, {len(scored)} ok, {time.perf_counter() - started:.1f}s; note: {best.note}")
    for h in history:
        print(f"  #{h.candidate_id} {h.status} {h.score} parent={h.parent_id} {read_genome(h.source).tokens}")
    print(diff)
    assert best.score > baseline


def test_rounding_a_scalar_never_leaves_its_range() -> None:
    from afr.agents.mechanisms import clip_tidy, render_scalar

    spec = Scalar(0.999, 0.9, 0.99999)
    assert clip_tidy(spec, 0.999995) <= 0.99999
    assert render_scalar(spec, 0.999995) == "scalar(0.99999, 0.9, 0.99999)"


# --- any recipe as the baseline --------------------------------------------------------------------------

USER_BASELINE = '''"""A user's recipe: FedAvg with a damped server step."""

from __future__ import annotations

from typing import Any

from afr.recipe import ClientUpdate, FedAvg, Params, scalar, weighted_mean_delta


class Damped(FedAvg):
    """x <- x + server_lr * damping * mean delta."""

    name = "damped"

    damping = scalar(0.8, 0.1, 1.0)

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        return {k: global_params[k] + self.server_lr * self.damping * delta[k] for k in global_params}
'''


def evolve_class(source: str) -> type[FedAvg]:
    """The class the evolve agent wrote (the file's last class), from a file that may hold others."""
    namespace: dict = {"__name__": "candidate"}
    exec(compile(source, "candidate.py", "exec"), namespace)
    return namespace[ast.parse(source).body[-1].name]


def check_evolve_class_runs(source: str) -> None:
    profile = tiny_synthetic()
    result = run_federation(profile, profile.make_recipe(evolve_class(source)), seed=0)
    assert len(result.curve) == 2 and math.isfinite(result.final_val)


def test_a_shipped_baseline_other_than_fedavg():
    ctx = make_ctx(baseline=recipe_source("fedprox"))
    proposals = EvolveAgent(CONFIG, seed=0).propose(ctx, 6)
    assert len(proposals) == 6
    for proposal in proposals:
        check_valid(proposal.source, ("synthetic",))
        assert "(FedProx):" in proposal.source and "FedAvg" not in proposal.source
        assert read_genome(proposal.source).tokens == tuple(proposal.meta["mechanisms"])
        assert proposal.note.startswith("FedProx plus one mechanism")
    check_evolve_class_runs(proposals[0].source)
    # a mechanism scalar the baseline already declares (FedProx's mu) is redeclared and still validates
    env = mechanisms_module.environment(
        "synthetic", *context_texts("synthetic")[:2], CONFIG, recipe_source("fedprox")
    )
    source = write_recipe(None, Genome((Gene("prox"), Gene("server_adam"))), env)
    assert "mu = scalar(" in source and "class Evolved(FedProx):" in source
    check_valid(source, ("synthetic",))
    check_evolve_class_runs(source)


def test_a_users_file_as_baseline():
    table = surface_table("synthetic")
    agent = EvolveAgent(CONFIG, seed=5)
    history: tuple = ()
    made: list[Proposal] = []
    for _ in range(4):
        ctx = make_ctx(
            baseline=RecipeSource.from_text(USER_BASELINE, "recipes/damped.py"),
            baseline_score=0.5,
            history=history,
            step=len(history),
        )
        proposals = agent.propose(ctx, 4)
        scores = [0.5 + 0.05 * len(p.meta["mechanisms"]) for p in proposals]
        history += fake_history(proposals, scores, start=len(history) + 1)
        made += proposals
    assert any(len(p.meta["mechanisms"]) >= 2 for p in made), "children of the user's baseline"
    user_class = USER_BASELINE[USER_BASELINE.index("class Damped") :]
    for proposal in made:
        report = validate(proposal.source, table)
        assert report.ok, f"{report}\n{proposal.source}"
        assert user_class in proposal.source, "the user's code is kept verbatim"
        cls = evolve_class(proposal.source)
        assert cls.__name__ == "Evolved" and cls.__mro__[1].__name__ == "Damped"
        genome = read_genome(proposal.source)
        assert genome.tokens == tuple(proposal.meta["mechanisms"])
        renders_aggregate = any("aggregate" in g.mechanism.hooks for g in genome.genes)
        assert ("aggregate" in vars(cls)) == renders_aggregate
        assert "damping" in cls.declared_scalars()
    inherited = next(p for p in made if "aggregate" not in vars(evolve_class(p.source)))
    check_evolve_class_runs(inherited.source)


def test_a_users_file_gets_the_imports_its_subclass_needs():
    bare = 'from afr.recipe import FedAvg\n\n\nclass Evolved(FedAvg):\n    name = "mine"\n'
    env = mechanisms_module.Environment(baseline=RecipeSource.from_text(bare, "mine.py"))
    genome = Genome((Gene("server_yogi"), Gene("scaffold"), Gene("lr_schedule", "cosine"), Gene("l2")))
    source = write_recipe(None, genome, env)
    check_valid(source, ("synthetic",))
    assert "class Evolved2(Evolved):" in source, "the evolve class does not shadow the user's class"
    assert set(read_genome(source).tokens) == set(genome.tokens)
    assert evolve_class(source).__name__ == "Evolved2"
    check_evolve_class_runs(source)
    tree = ast.parse(source)
    imported = {alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {"FedAvg", "scalar", "yogi_second_moment", "scaffold_correction", "Tensor", "Any"} <= imported
    assert source.count("from afr.recipe import") == 1, "missing recipe names join the user's import"
