"""The ``evolve`` agent: an offline, seeded evolutionary search over FL mechanisms (no key, no network).

Candidates are subclasses of the campaign's baseline recipe (``ctx.baseline``, FedAvg by
default; a user's baseline file is copied into each candidate) written by libcst edits from the
mechanism library (:mod:`afr.agents.mechanisms`); each file carries its own genome (the
``Mechanisms:`` line of the evolve class's docstring and its ``scalar(...)`` declarations), so the
agent keeps no hidden state between calls.

The rule, at each call (everything drawn from ``random.Random(sha256(seed, step))``):

1. **First generation** — while fewer than ``initial_population`` candidates have a score (by default
   one per slot of the library), propose single mechanisms applied to the baseline, in a seeded order
   that fills every slot (a niche of the archive) once before any second mechanism or variant of a
   slot. Evolving after four noisy scores left much of the library untried on a small budget: on
   tcga_brca a decaying client learning rate, the one family whose gain repeated on fresh seeds, ran
   in 14 of 20 campaigns of 24 runs, and in 7 of 20 with seed racing (fewer, better-measured
   candidates; racing recalled it in 6 of those 7). Optuna's TPE likewise starts from random trials.
2. **Evolution** — the parent pool is every scored ``ok`` evolve candidate of ``ctx.history`` /
   ``ctx.best`` plus the baseline (``ctx.baseline_score``), kept as a diversity archive: one elite per
   niche (the set of mechanism families a genome fills, :func:`niche`), so a lineage's clones take one
   place. Parents are chosen by tournament among the best ``population_size`` elites
   (``tournament_size`` drawn without replacement, the best wins; with probability ``elite_rate`` the
   best of all; with probability ``niche_rate`` the elite of a uniformly drawn niche), respecting
   ``ctx.higher_is_better``. A child is made by
   one operator: *add* a mechanism in a free slot (composition), *swap* a mechanism for another
   variant of its slot, *remove* one, *perturb* one scalar default inside its range, or *crossover*
   two parents' genes slot by slot. With probability ``explore_rate`` a not-yet-tried single
   mechanism is proposed instead.
3. **Filters** — a child whose normalised text equals any file of the history (or of this batch) is
   re-drawn; so is a child whose mechanism set failed or was rejected and never ran ``ok``. Mechanisms
   that failed are also drawn less often by *add* (weight 1 / (1 + failures)).

This module never imports the engine, the sandbox, the ledger, the budget accountant or the validator.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..recipe import Scalar
from ._base import Agent, AgentContext, HistoryItem, Proposal
from .mechanisms import (
    Environment,
    Gene,
    Genome,
    clip_tidy,
    describe_gene,
    environment,
    environment_from_brief,
    normalise_source,
    read_genome,
    write_recipe,
)
from .mechanisms._base import bound, tidy
from .mechanisms._environment import genome_values
from .mechanisms.server import ADAPTIVE_SERVERS

__all__ = ["EvolveAgent", "EvolveSettings"]

OPERATORS = ("add", "swap", "perturb", "crossover", "remove")


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` (sha256, never Python's salted ``hash``)."""
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class EvolveSettings:
    """The knobs of ``afr/conf/agent/evolve.yaml`` (see the comments there)."""

    initial_population: int | None = None
    population_size: int = 4
    tournament_size: int = 3
    elite_rate: float = 0.2
    explore_rate: float = 0.1
    operators: Mapping[str, float] = field(
        default_factory=lambda: {"add": 0.35, "swap": 0.15, "perturb": 0.3, "crossover": 0.15, "remove": 0.05}
    )
    perturb_sigma_log: float = 0.7
    perturb_sigma_linear: float = 0.15
    max_attempts: int = 40
    include_baseline: bool = True
    archive: bool = True
    niche_rate: float = 0.2

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> EvolveSettings:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in cfg.items() if k in known and v is not None}
        if "operators" in values:
            rates = {k: float(v) for k, v in dict(values["operators"]).items() if k in OPERATORS}
            values["operators"] = rates or cls().operators
        return cls(**values)


@dataclass(frozen=True)
class Parent:
    """A scored candidate the rule may vary (``candidate_id`` None: the baseline)."""

    candidate_id: int | None
    score: float
    genome: Genome
    source: str | None
    label: str
    """How notes name it: ``the FedAvg baseline`` or the candidate's campaign name (``agent#7``)."""


@dataclass
class Child:
    genome: Genome
    parent: Parent | None
    operator: str
    note: str
    parents: tuple[int | None, ...] = ()


def _family(genome: Genome) -> str:
    server = genome.gene("server")
    return "adaptive" if server is not None and server.key in ADAPTIVE_SERVERS else "sgd"


def _refit(child: Genome, parent: Genome) -> Genome:
    """Reset server_lr to the new family's default when the server optimiser family changes."""
    if _family(child) == _family(parent) or "server_lr" not in child.values:
        return child
    values = {k: v for k, v in child.values.items() if k != "server_lr"}
    return Genome(child.genes, values)


def niche(genome: Genome) -> frozenset[str]:
    """A genome's cell of the diversity archive: the mechanism families (slots) it fills, whatever the
    variants and scalar values — a lineage's perturbed clones share one cell."""
    return frozenset(g.slot for g in genome.genes)


def archive_elites(pool: Sequence[Parent]) -> list[Parent]:
    """The best parent of each niche (``pool`` is sorted best first; so is the result)."""
    elites: dict[frozenset[str], Parent] = {}
    for parent in pool:
        elites.setdefault(niche(parent.genome), parent)
    return list(elites.values())


def _tokens(genome: Genome, env: Environment) -> str:
    return ", ".join(genome.tokens) if genome.genes else f"plain {env.baseline.class_name}"


_RENDERED_MAX = 4096
"""Rendered files an evolve agent remembers (a few kB each)."""


class EvolveAgent(Agent):
    """Tournament selection + composition / variant swap / scalar mutation / crossover of mechanisms."""

    name: ClassVar[str] = "evolve"

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.settings = EvolveSettings.from_cfg(self.cfg)
        self._rendered: dict[tuple, tuple[str, str]] = {}
        self._render_env: Environment | None = None

    # --- the Agent interface ----------------------------------------------------------------------

    def propose(self, ctx: AgentContext, n: int) -> list[Proposal]:
        if ctx.brief is not None:  # the campaign's typed facts
            env = environment_from_brief(ctx.brief, self.cfg)
        else:  # a hand-made context: the facts are read from its texts
            env = environment(
                ctx.profile_name, ctx.profile_description, ctx.surface_doc, self.cfg, ctx.baseline
            )
        rng = random.Random(derive_seed("evolve", self.seed, ctx.step))
        items = self._items(ctx)
        seen = {normalise_source(item.source) for item in items}
        seen.add(normalise_source(write_recipe(None, Genome(), env)))  # the baseline, restated
        seen.add(normalise_source(ctx.baseline.text))
        ok_sets: set[frozenset[str]] = set()
        bad_sets: set[frozenset[str]] = set()
        failures: dict[str, int] = {}
        for item in items:
            genome = read_genome(item.source)
            if genome is None:
                continue
            if item.status == "ok":
                ok_sets.add(genome.signature)
            elif item.status != "duplicate":
                bad_sets.add(genome.signature)
                for gene in genome.genes:
                    failures[gene.key] = failures.get(gene.key, 0) + 1
        bad_sets -= ok_sets
        pool = self._pool(ctx, items, env)
        scored = sum(p.candidate_id is not None for p in pool)
        singles = self._singles(env)
        if env != self._render_env:  # the same genome renders to the same file while the facts stay the same
            self._rendered, self._render_env = {}, env
        proposals: list[Proposal] = []
        for _ in range(max(0, n)):
            for _attempt in range(self.settings.max_attempts):
                child = self._child(rng, env, ctx, pool, scored, singles, seen, bad_sets, failures)
                if child is None:
                    break
                if child.genome.signature in bad_sets:
                    continue
                parent_source = child.parent.source if child.parent is not None else None
                source, key = self._render(parent_source, child.genome, env)
                if key in seen:
                    continue
                seen.add(key)
                proposals.append(self._proposal(child, source, env))
                break
        return proposals

    def _render(self, parent_source: str | None, genome: Genome, env: Environment) -> tuple[str, str]:
        """The child's file (a libcst edit of its parent's) and its normalised text, memoised across calls
        (rendering every first-generation single to check it against the history was most of a call)."""
        memo_key = (genome.genes, tuple(sorted(genome_values(genome, env).items())))
        if memo_key not in self._rendered:
            if len(self._rendered) >= _RENDERED_MAX:
                self._rendered.clear()
            source = write_recipe(parent_source, genome, env)
            self._rendered[memo_key] = (source, normalise_source(source))
        return self._rendered[memo_key]

    # --- reading the context ------------------------------------------------------------------------

    @staticmethod
    def _items(ctx: AgentContext) -> list[HistoryItem]:
        """History and best candidates, once each, by candidate id."""
        merged: dict[int, HistoryItem] = {}
        for item in (*ctx.history, *ctx.best, *ctx.recent_failures):
            merged.setdefault(item.candidate_id, item)
        return [merged[k] for k in sorted(merged)]

    def _pool(self, ctx: AgentContext, items: Sequence[HistoryItem], env: Environment) -> list[Parent]:
        """Scored evolve candidates (and the baseline), best first."""
        pool = []
        for item in items:
            if item.status != "ok" or item.score is None or not math.isfinite(item.score):
                continue
            genome = read_genome(item.source)
            if genome is not None:
                pool.append(Parent(item.candidate_id, float(item.score), genome, item.source, item.label))
        baseline = ctx.baseline_score
        if self.settings.include_baseline and baseline is not None and math.isfinite(baseline):
            label = f"the {env.baseline.class_name} baseline"
            pool.append(Parent(None, float(baseline), Genome(), None, label))
        sign = -1.0 if ctx.higher_is_better else 1.0
        return sorted(pool, key=lambda p: (sign * p.score, -1 if p.candidate_id is None else p.candidate_id))

    def _singles(self, env: Environment) -> list[Gene]:
        """The first generation's order: one mechanism of every slot (a seeded pick of mechanism and
        variant: every niche of the archive once), then every other mechanism and variant."""
        rng = random.Random(derive_seed("first-generation", self.seed))
        by_slot: dict[str, list[Gene]] = {}
        for gene in env.options():
            by_slot.setdefault(gene.slot, []).append(gene)
        first, rest = [], []
        for genes in by_slot.values():
            keys = list(dict.fromkeys(g.key for g in genes))
            key = rng.choice(keys)
            pick = rng.choice([g for g in genes if g.key == key])
            first.append(pick)
            rest.extend(g for g in genes if g != pick)
        rng.shuffle(first)
        rng.shuffle(rest)
        return first + rest

    def _first_generation_size(self, singles: Sequence[Gene]) -> int:
        """How many scored candidates end the first generation: ``initial_population``, or with None one
        per slot of the library (as many as :meth:`_singles` puts first)."""
        if self.settings.initial_population is not None:
            return self.settings.initial_population
        return len({g.slot for g in singles})

    # --- making one child -------------------------------------------------------------------------------

    def _child(
        self,
        rng: random.Random,
        env: Environment,
        ctx: AgentContext,
        pool: list[Parent],
        scored: int,
        singles: list[Gene],
        seen: set[str],
        bad_sets: set[frozenset[str]],
        failures: Mapping[str, int],
    ) -> Child | None:
        settings = self.settings
        explore = scored < self._first_generation_size(singles) or rng.random() < settings.explore_rate
        if explore:
            single = self._fresh_single(env, singles, seen, bad_sets)
            if single is not None:
                return single
        if not pool:
            return self._random_pair(rng, env)
        parent = self._select(rng, pool)
        weights = [max(0.0, float(settings.operators.get(op, 0.0))) for op in OPERATORS]
        if sum(weights) <= 0:
            weights = [1.0] * len(OPERATORS)
        operator = rng.choices(OPERATORS, weights)[0]
        for op in (operator, "add", "perturb", "swap"):
            child = getattr(self, f"_op_{op}")(rng, env, parent, pool, failures)
            if child is not None:
                return child
        return None

    def _fresh_single(
        self, env: Environment, singles: list[Gene], seen: set[str], bad_sets: set[frozenset[str]]
    ) -> Child | None:
        for gene in singles:
            genome = Genome().with_gene(gene, gene.slot)
            if genome.signature in bad_sets:
                continue
            if self._render(None, genome, env)[1] in seen:
                continue
            note = f"{env.baseline.class_name} plus one mechanism, {gene.token}: {describe_gene(gene)}"
            return Child(genome, None, "single", note, (None,))
        return None

    def _random_pair(self, rng: random.Random, env: Environment) -> Child | None:
        options = env.options()
        if not options:
            return None
        genome = Genome()
        for gene in rng.sample(options, min(2, len(options))):
            if genome.gene(gene.slot) is None:
                genome = genome.with_gene(gene, gene.slot)
        return Child(
            genome,
            None,
            "random",
            f"{env.baseline.class_name} plus {_tokens(genome, env)} (no scored parent yet).",
            (None,),
        )

    def _select(self, rng: random.Random, pool: list[Parent], exclude: Parent | None = None) -> Parent:
        """A parent from the diversity archive (``settings.archive``): one elite per niche competes, so
        clones of one lineage fill one place, not the whole population; with probability ``niche_rate`` a
        uniformly drawn niche's elite, else a tournament among the best ``population_size`` elites
        (without the archive: among the best candidates). ``pool`` is sorted best first."""
        settings = self.settings
        candidates = archive_elites(pool) if settings.archive else list(pool)
        everyone = (
            [p for p in candidates if p is not exclude] or [p for p in pool if p is not exclude] or pool
        )
        population = everyone[: max(1, settings.population_size)]
        if rng.random() < settings.elite_rate:
            return population[0]
        if settings.archive and rng.random() < settings.niche_rate:
            return rng.choice(everyone)
        drawn = rng.sample(range(len(population)), min(max(1, settings.tournament_size), len(population)))
        return population[min(drawn)]

    def _op_add(
        self,
        rng: random.Random,
        env: Environment,
        parent: Parent,
        pool: list[Parent],
        failures: Mapping[str, int],
    ) -> Child | None:
        options = [g for g in env.options() if parent.genome.gene(g.slot) is None]
        if not options:
            return None
        weights = [1.0 / (1 + failures.get(g.key, 0)) for g in options]
        gene = rng.choices(options, weights)[0]
        genome = _refit(parent.genome.with_gene(gene, gene.slot), parent.genome)
        note = (
            f"From {parent.label} ({_tokens(parent.genome, env)}): added {gene.token}. {describe_gene(gene)}"
        )
        return Child(genome, parent, "add", note, (parent.candidate_id,))

    def _op_swap(
        self,
        rng: random.Random,
        env: Environment,
        parent: Parent,
        pool: list[Parent],
        failures: Mapping[str, int],
    ) -> Child | None:
        swappable = [g for g in parent.genome.genes if len(env.options(g.slot)) > 1]
        if not swappable:
            return None
        old = rng.choice(swappable)
        new = rng.choice([g for g in env.options(old.slot) if g != old])
        genome = _refit(parent.genome.with_gene(new, old.slot), parent.genome)
        note = (
            f"From {parent.label} ({_tokens(parent.genome, env)}): swapped {old.token} for {new.token}. "
            f"{describe_gene(new)}"
        )
        return Child(genome, parent, "swap", note, (parent.candidate_id,))

    def _op_remove(
        self,
        rng: random.Random,
        env: Environment,
        parent: Parent,
        pool: list[Parent],
        failures: Mapping[str, int],
    ) -> Child | None:
        if not parent.genome.genes:
            return None
        old = rng.choice(parent.genome.genes)
        genome = _refit(parent.genome.with_gene(None, old.slot), parent.genome)
        note = f"From {parent.label} ({_tokens(parent.genome, env)}): removed {old.token}."
        return Child(genome, parent, "remove", note, (parent.candidate_id,))

    def _op_perturb(
        self,
        rng: random.Random,
        env: Environment,
        parent: Parent,
        pool: list[Parent],
        failures: Mapping[str, int],
    ) -> Child | None:
        values = genome_values(parent.genome, env)
        specs = env.specs(parent.genome)
        keys = [k for k, s in specs.items() if s.high > s.low]
        if not keys:
            return None
        key = rng.choice(keys)
        spec, old = specs[key], values[key]
        new = old
        for _ in range(8):
            new = self._perturbed(rng, spec, old)
            if new != old:
                break
        if new == old:
            return None
        genome = parent.genome.with_values({key: new})
        note = (
            f"From {parent.label} ({_tokens(parent.genome, env)}): scalar {key} {bound(old)} -> {bound(new)} "
            f"(range [{bound(spec.low)}, {bound(spec.high)}]{', log scale' if spec.log else ''})."
        )
        return Child(genome, parent, "perturb", note, (parent.candidate_id,))

    def _perturbed(self, rng: random.Random, spec: Scalar, value: float) -> float:
        if spec.log and value > 0:
            new = value * math.exp(rng.gauss(0.0, self.settings.perturb_sigma_log))
        else:
            new = value + rng.gauss(0.0, self.settings.perturb_sigma_linear * (spec.high - spec.low))
        return clip_tidy(spec, tidy(new))

    def _op_crossover(
        self,
        rng: random.Random,
        env: Environment,
        parent: Parent,
        pool: list[Parent],
        failures: Mapping[str, int],
    ) -> Child | None:
        if len(pool) < 2:
            return None
        other = self._select(rng, pool, exclude=parent)
        if other is parent:
            return None
        first, second = parent.genome, other.genome
        slots = [g.slot for g in (*first.genes, *second.genes)]
        differing = [s for s in dict.fromkeys(slots) if first.gene(s) != second.gene(s)]
        if len(differing) < 2:
            return None  # the child would equal one of the parents
        # Uniform crossover on the slots where the parents differ, taking at least one slot from each.
        mask = [False] * len(differing)
        while all(mask) or not any(mask):
            mask = [rng.random() < 0.5 for _ in differing]
        genome = Genome(first.genes, dict(first.values))
        taken: list[str] = []
        for slot, take in zip(differing, mask, strict=True):
            if not take:
                continue
            mine, theirs = first.gene(slot), second.gene(slot)
            genome = genome.with_gene(theirs, slot)
            if theirs is not None:
                taken.append(theirs.token)
                names = theirs.mechanism.scalar_specs(theirs.variant)
                genome = genome.with_values({k: v for k, v in second.values.items() if k in names})
            else:
                taken.append(f"the absence of {mine.token}" if mine is not None else "")
        if _family(genome) != _family(first):
            if _family(genome) == _family(second) and "server_lr" in second.values:
                genome = genome.with_values({"server_lr": second.values["server_lr"]})
            else:
                genome = _refit(genome, first)
        from_first, from_second, now = _tokens(first, env), _tokens(second, env), _tokens(genome, env)
        note = (
            f"Crossover of {parent.label} ({from_first}) with {other.label} ({from_second}): "
            f"took {', '.join(t for t in taken if t) or 'nothing'} from the second; now {now}."
        )
        return Child(genome, parent, "crossover", note, (parent.candidate_id, other.candidate_id))

    # --- the proposal -------------------------------------------------------------------------------------

    @staticmethod
    def _proposal(child: Child, source: str, env: Environment) -> Proposal:
        meta = {
            "operator": child.operator,
            "mechanisms": list(child.genome.tokens),
            "parents": [p for p in child.parents if p is not None],
            "scalars": genome_values(child.genome, env),
        }
        parent_id = child.parent.candidate_id if child.parent is not None else None
        return Proposal(source=source, parent_id=parent_id, note=child.note, meta=meta)
