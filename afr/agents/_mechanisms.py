"""The evolve agent's mechanism library: federated-learning mechanisms as libcst edits of a recipe file.

A candidate's *genome* is a set of genes, at most one per *slot* (mechanisms sharing a slot are
alternatives: one server optimiser, one robust combiner, one learning-rate schedule…), plus the current
defaults of its declared scalars. Hooks that several mechanisms touch are not stacked overrides: they
are re-rendered from the whole genome each time a mechanism is added or changed —

* ``aggregate`` = client weights rule × delta transforms (FedNova normalisation, norm clipping) ×
  combiner (weighted mean / trimmed mean / coordinate-wise median) × server update
  (SGD / momentum / Adam / Yogi / Adagrad) [+ the SCAFFOLD control-variate update];
* ``local_objective`` = task loss + a sum of terms (proximal, L2, SCAFFOLD correction);
* ``client_lr`` and ``local_steps`` = the base value × a schedule over rounds.

The genome is written into the file itself (nothing is kept in the agent): the recipe class's
docstring ends with one machine-readable line::

    Mechanisms: server_adam(beta1, beta2, tau), prox(mu), lr_schedule=cosine(lr_min_ratio)

(``key`` or ``key=variant``; the parenthesised scalar names are informational) and the scalar defaults
are the ``x = scalar(default, low, high, ...)`` declarations of the class body. :func:`read_genome`
recovers both with Python's parser; :func:`write_recipe` applies a genome to a parent file with three libcst
transformers (imports, module docstring, recipe class body).

The evolve class derives from the campaign's baseline (a :class:`~afr.recipe.RecipeSource`, FedAvg by
default) and is found by its ``Mechanisms:`` line; hooks the genome does not render are the baseline's.
A shipped baseline is imported from ``afr.recipe``; a user's baseline file cannot be, so each candidate is
that file (its imports kept, missing ones added) followed by the evolve class. Mechanisms that a shipped
recipe also implements (server momentum, FedAdam/FedYogi/FedAdagrad, SCAFFOLD, FedProx's term) call
the same functions of ``afr.recipe`` as that recipe, so they compute exactly what it computes.

What the agent knows about the profile (:class:`Environment`) is parsed from the context it is given:
the profile description (YAML of ``Profile.describe()``: keys ``name``, ``clients``, ``budget``
(``rounds``, ``local_steps``, ``batch_size``), ``metric``, ``higher_is_better``, ``model_variants``) and
the per-profile surface document (mutable hooks, the baseline's scalar table, model variants and the
communication contract). Every field has a safe fallback when the text lacks it.

This module never imports the engine, the sandbox, the ledger, the budget accountant or the validator.
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import libcst as cst

from .. import recipe
from ..recipe import DEFAULT_BASELINE, HOOKS, RecipeSource, Scalar, recipe_source
from ._brief import TaskBrief

__all__ = [
    "Mechanism",
    "Gene",
    "Genome",
    "Environment",
    "MECHANISMS",
    "SLOTS",
    "HOOK_ORDER",
    "environment",
    "environment_from_brief",
    "read_genome",
    "write_recipe",
    "normalise_source",
    "describe_gene",
    "skeleton",
    "clip_tidy",
    "render_scalar",
]

CLASS_NAME = "Evolved"
RECIPE_NAME = "evolved"
HOOK_ORDER = HOOKS
HELPERS = ("round_progress",)
MARKER = "Mechanisms:"


# --- scalars -------------------------------------------------------------------------------------


def clip_tidy(spec: Scalar, value: float) -> float:
    """``value`` clipped into ``spec``'s range and rounded by :func:`tidy` (generated files stay readable)."""
    value = spec.clip(value)
    if spec.integer:
        return value
    # rounding to 4 digits may step outside the range (0.99999 -> 1): keep the exact bound then
    return spec.clip(tidy(value))


def render_scalar(spec: Scalar, value: float | None = None) -> str:
    """The ``scalar(...)`` declaration of ``spec`` with default ``value`` (None: the spec's default)."""
    value = spec.default if value is None else clip_tidy(spec, value)
    args = [number(value, spec.integer), bound(spec.low, spec.integer), bound(spec.high, spec.integer)]
    if spec.log:
        args.append("log=True")
    if spec.integer:
        args.append("integer=True")
    return f"scalar({', '.join(args)})"


def tidy(value: float) -> float:
    """``value`` rounded to 4 significant digits (generated files stay readable)."""
    return 0.0 if value == 0 else float(f"{value:.4g}")


def number(value: float, integer: bool = False) -> str:
    """A Python literal for ``value`` rounded by :func:`tidy` (ints without a trailing ``.0``).

    Values that :func:`tidy` would change are passed through :func:`clip_tidy` first by their callers.
    """
    return bound(round(value) if integer else value, integer)


def bound(value: float, integer: bool = False) -> str:
    """A Python literal for ``value`` exactly (range bounds are never rounded)."""
    if integer:
        return str(int(round(value)))
    return str(int(value)) if value == int(value) and abs(value) < 1e6 else repr(float(value))


# --- the library ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mechanism:
    """One entry of the library. ``variants`` empty: the mechanism has no variant."""

    key: str
    slot: str
    hooks: tuple[str, ...]
    summary: str
    """A sentence for the recipe's docstring (``{variant}`` is filled in)."""
    scalars: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)
    """Variant ('' when none) -> scalars it declares."""
    variants: tuple[str, ...] = ()

    def scalar_specs(self, variant: str) -> Mapping[str, Scalar]:
        return self.scalars.get(variant, self.scalars.get("", {}))


def _s(default: float, low: float, high: float, log: bool = False) -> Scalar:
    return Scalar(default, low, high, log)


_ADAPTIVE = {"beta1": _s(0.9, 0.0, 0.999), "beta2": _s(0.999, 0.9, 0.99999), "tau": _s(1e-3, 1e-9, 0.1, True)}

MECHANISMS: dict[str, Mechanism] = {
    m.key: m
    for m in (
        Mechanism(
            "server_momentum",
            "server",
            ("aggregate",),
            "The server applies heavy-ball momentum to the aggregated update (FedAvgM).",
            {"": {"server_momentum": _s(0.9, 0.0, 0.99)}},
        ),
        Mechanism(
            "server_adam",
            "server",
            ("aggregate",),
            "The server treats the aggregated update as a pseudo-gradient for Adam: "
            "x <- x + server_lr * m / (sqrt(v) + tau) (FedAdam).",
            {"": _ADAPTIVE},
        ),
        Mechanism(
            "server_yogi",
            "server",
            ("aggregate",),
            "The server uses Yogi's sign-controlled second moment: "
            "x <- x + server_lr * m / (sqrt(v) + tau) (FedYogi).",
            {"": _ADAPTIVE},
        ),
        Mechanism(
            "server_adagrad",
            "server",
            ("aggregate",),
            "The server uses Adagrad's accumulated second moment: "
            "x <- x + server_lr * m / (sqrt(v) + tau) (FedAdagrad).",
            {"": {k: v for k, v in _ADAPTIVE.items() if k != "beta2"}},
        ),
        Mechanism(
            "trimmed_mean",
            "combiner",
            ("aggregate",),
            "Client updates are combined by a coordinate-wise trimmed mean (unweighted), "
            "dropping the trim_fraction largest and smallest values.",
            {"": {"trim_fraction": _s(0.2, 0.05, 0.45)}},
        ),
        Mechanism(
            "median",
            "combiner",
            ("aggregate",),
            "Client updates are combined by their coordinate-wise median (unweighted).",
        ),
        Mechanism(
            "sample_weighting",
            "weights",
            ("aggregate",),
            "Clients are weighted by {variant} instead of by their number of samples.",
            variants=("uniform", "sqrt"),
        ),
        Mechanism(
            "fednova",
            "nova",
            ("aggregate",),
            "Each client's update is divided by its local steps and the average is rescaled by the "
            "weighted mean step count (FedNova's normalised averaging).",
        ),
        Mechanism(
            "delta_clip",
            "clip",
            ("aggregate",),
            "Client updates whose norm exceeds clip_multiplier times the median norm are scaled down.",
            {"": {"clip_multiplier": _s(2.0, 0.5, 10.0, True)}},
        ),
        Mechanism(
            "prox",
            "prox",
            ("local_objective",),
            "Clients add FedProx's proximal term mu/2 ||theta - x||^2 to the task loss.",
            {"": {"mu": _s(0.01, 1e-4, 10.0, True)}},
        ),
        Mechanism(
            "l2",
            "l2",
            ("local_objective",),
            "Clients add an L2 penalty weight_decay/2 ||theta||^2 (weight decay) to the task loss.",
            {"": {"weight_decay": _s(1e-4, 1e-6, 0.1, True)}},
        ),
        Mechanism(
            "scaffold",
            "scaffold",
            ("broadcast", "local_objective", "client_extras", "aggregate"),
            "SCAFFOLD control variates travel as the contract's control extras: clients correct their "
            "gradient by c - c_i and upload the change of c_i; the server averages the changes into c.",
        ),
        Mechanism(
            "lr_schedule",
            "lr_schedule",
            ("client_lr",),
            "The client learning rate follows a {variant} schedule over rounds.",
            {
                "cosine": {"lr_min_ratio": _s(0.1, 0.0, 1.0)},
                "step": {"lr_decay": _s(0.3, 0.05, 1.0)},
                "warmup": {"warmup_fraction": _s(0.2, 0.05, 0.5), "warmup_start": _s(0.1, 0.01, 1.0, True)},
            },
            ("cosine", "step", "warmup"),
        ),
        Mechanism(
            "step_schedule",
            "steps",
            ("local_steps",),
            "The number of local steps follows a {variant} schedule over rounds (never above the budget).",
            {
                "ramp": {"steps_start_fraction": _s(0.5, 0.1, 1.0)},
                "decay": {"steps_end_fraction": _s(0.5, 0.1, 1.0)},
            },
            ("ramp", "decay"),
        ),
        Mechanism(
            "model_variant",
            "variant",
            ("model_variant",),
            "The profile's model variant {variant!r} is trained instead of the default model.",
        ),
        Mechanism(
            "client_sampling",
            "sampling",
            ("select_clients",),
            "Each round a seeded random subset of about client_fraction of the clients trains (never empty).",
            {"": {"client_fraction": _s(0.5, 0.2, 1.0)}},
        ),
    )
}

SLOTS: tuple[str, ...] = tuple(dict.fromkeys(m.slot for m in MECHANISMS.values()))
ADAPTIVE_SERVERS = ("server_adam", "server_yogi", "server_adagrad")


# --- genome ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gene:
    key: str
    variant: str = ""

    @property
    def mechanism(self) -> Mechanism:
        return MECHANISMS[self.key]

    @property
    def slot(self) -> str:
        return self.mechanism.slot

    @property
    def token(self) -> str:
        return f"{self.key}={self.variant}" if self.variant else self.key


@dataclass(frozen=True)
class Genome:
    """Genes (at most one per slot, in :data:`SLOTS` order) and the values of the declared scalars."""

    genes: tuple[Gene, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)

    def gene(self, slot: str) -> Gene | None:
        return next((g for g in self.genes if g.slot == slot), None)

    def has(self, key: str) -> bool:
        return any(g.key == key for g in self.genes)

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(g.token for g in self.genes)

    @property
    def signature(self) -> frozenset[str]:
        """The mechanism set (what the agent refuses to re-propose after a failure)."""
        return frozenset(self.tokens)

    def with_gene(self, gene: Gene | None, slot: str) -> Genome:
        """This genome with ``slot`` set to ``gene`` (None: removed); genes stay in slot order."""
        genes = {g.slot: g for g in self.genes}
        if gene is None:
            genes.pop(slot, None)
        else:
            genes[slot] = gene
        return Genome(tuple(genes[s] for s in SLOTS if s in genes), dict(self.values))

    def with_values(self, values: Mapping[str, float]) -> Genome:
        return Genome(self.genes, {**self.values, **values})


# --- what the agent knows about the profile ----------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    profile: str = ""
    baseline: RecipeSource = field(default_factory=lambda: recipe_source(DEFAULT_BASELINE))
    lr: Scalar = Scalar(0.01, 1e-5, 1.0, log=True)
    server_lr: Scalar = Scalar(1.0, 0.1, 3.0, log=True)
    adaptive_server_lr: float = 0.03
    horizon: int = 20
    """Rounds of the profile's budget (schedules reach their end at the last round)."""
    model_variants: tuple[str, ...] = ()
    """Non-default model variants."""
    mutable_hooks: frozenset[str] = frozenset(HOOK_ORDER)
    control_extras: bool = True
    """Whether the contract carries ``control`` extras both ways (SCAFFOLD needs it)."""
    enabled: tuple[str, ...] | None = None

    def applicable(self, key: str) -> bool:
        mech = MECHANISMS[key]
        if self.enabled is not None and key not in self.enabled:
            return False
        if not set(mech.hooks) <= self.mutable_hooks:
            return False
        if key == "scaffold" and not self.control_extras:
            return False
        return not (key == "model_variant" and not self.model_variants)

    def variants(self, key: str) -> tuple[str, ...]:
        return self.model_variants if key == "model_variant" else MECHANISMS[key].variants

    def options(self, slot: str | None = None) -> list[Gene]:
        """Every applicable (mechanism, variant) pair, in library order."""
        out = []
        for key, mech in MECHANISMS.items():
            if (slot is None or mech.slot == slot) and self.applicable(key):
                out.extend(Gene(key, v) for v in (self.variants(key) or ("",)))
        return out

    def base_specs(self, genome: Genome) -> dict[str, Scalar]:
        server = genome.gene("server")
        server_lr = self.server_lr
        if server is not None and server.key in ADAPTIVE_SERVERS:
            server_lr = server_lr.with_default(clip_tidy(server_lr, self.adaptive_server_lr))
        return {"lr": self.lr, "server_lr": server_lr}

    def specs(self, genome: Genome) -> dict[str, Scalar]:
        """Every scalar the genome's file declares, base scalars first."""
        out = self.base_specs(genome)
        for gene in genome.genes:
            out.update(gene.mechanism.scalar_specs(gene.variant))
        return out


def environment(
    profile_name: str,
    profile_description: str,
    surface_doc: str,
    cfg: Mapping[str, Any] | None = None,
    baseline: RecipeSource | None = None,
) -> Environment:
    """What the agent knows about the profile, from the texts of its context (see the module doc)."""
    cfg = dict(cfg or {})
    described = _parse_description(profile_description)
    section = _profile_section(surface_doc, profile_name)
    table = _scalar_table(section)
    horizon = described.get("rounds") or 20
    variants = cfg.get("model_variants") or described.get("model_variants") or _doc_variants(section)
    hooks = _doc_hooks(section)
    enabled = cfg.get("mechanisms")
    return Environment(
        profile=profile_name,
        baseline=baseline or recipe_source(DEFAULT_BASELINE),
        lr=table.get("lr", Environment.lr),
        server_lr=table.get("server_lr", Environment.server_lr),
        adaptive_server_lr=float(cfg.get("adaptive_server_lr", 0.03)),
        horizon=max(1, int(horizon)),
        model_variants=tuple(str(v) for v in variants if str(v) != "default"),
        mutable_hooks=frozenset(hooks) if hooks else frozenset(HOOK_ORDER),
        control_extras=_doc_contract(section),
        enabled=tuple(enabled) if enabled else None,
    )


def environment_from_brief(brief: TaskBrief, cfg: Mapping[str, Any] | None = None) -> Environment:
    """What the agent knows about the profile, read from the campaign's typed brief (no text parsing)."""
    cfg = dict(cfg or {})
    variants = cfg.get("model_variants") or brief.model_variants
    hooks = [h for h in brief.mutable_hooks if h in HOOK_ORDER]
    enabled = cfg.get("mechanisms")
    return Environment(
        profile=brief.profile,
        baseline=brief.baseline,
        lr=_unnamed(brief.scalars.get("lr", Environment.lr)),
        server_lr=_unnamed(brief.scalars.get("server_lr", Environment.server_lr)),
        adaptive_server_lr=float(cfg.get("adaptive_server_lr", 0.03)),
        horizon=max(1, int(brief.rounds)),
        model_variants=tuple(str(v) for v in variants if str(v) != "default"),
        mutable_hooks=frozenset(hooks) if hooks else frozenset(HOOK_ORDER),
        control_extras=brief.control_extras,
        enabled=tuple(enabled) if enabled else None,
    )


def _unnamed(spec: Scalar) -> Scalar:
    """The spec as the environment keeps it: a range, not bound to a class attribute's name."""
    return Scalar(spec.default, spec.low, spec.high, spec.log, spec.integer)


def _parse_description(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data: Any = None
    try:
        import yaml

        data = yaml.safe_load(text) if text else None
    except Exception:  # not YAML: fall back to the regular expressions below
        data = None
    if isinstance(data, dict):
        budget = data.get("budget")
        if isinstance(budget, dict) and isinstance(budget.get("rounds"), int):
            out["rounds"] = budget["rounds"]
        elif isinstance(data.get("rounds"), int):
            out["rounds"] = data["rounds"]
        variants = data.get("model_variants")
        if isinstance(variants, list | tuple):
            out["model_variants"] = [str(v) for v in variants]
        return out
    found = re.search(r"rounds\W+(\d+)", text or "")
    if found:
        out["rounds"] = int(found.group(1))
    return out


def _profile_section(doc: str, profile: str) -> str:
    if not doc:
        return ""
    start = doc.find(f"## Profile `{profile}`")
    if start < 0:
        return doc
    end = doc.find("\n## ", start + 4)
    return doc[start:] if end < 0 else doc[start:end]


_ROW = re.compile(
    r"^\|\s*`(\w+)`\s*\|\s*([-+.\deE]+)\s*\|\s*([-+.\deE]+)\s*\|\s*([-+.\deE]+)\s*\|\s*(True|False)\s*\|"
    r"\s*(True|False)\s*\|",
    re.M,
)


def _scalar_table(section: str) -> dict[str, Scalar]:
    start = section.find("Tunable scalar space")
    if start < 0:
        return {}
    out = {}
    for m in _ROW.finditer(section[start:]):
        try:
            spec = Scalar(
                float(m.group(2)),
                float(m.group(3)),
                float(m.group(4)),
                m.group(5) == "True",
                m.group(6) == "True",
            )
        except ValueError:
            continue
        if spec.low <= spec.default <= spec.high and not (spec.log and spec.low <= 0):
            out.setdefault(m.group(1), spec)
    return out


def _doc_variants(section: str) -> list[str]:
    m = re.search(r"Model variants[^\n:]*:\s*([^\n]*)", section)
    return re.findall(r"`(\w+)`", m.group(1)) if m else []


def _doc_hooks(section: str) -> list[str]:
    start = section.find("### Mutable hooks")
    if start < 0:
        return []
    end = section.find("\n### ", start + 5)
    block = section[start : end if end > 0 else None]
    return [h for h in re.findall(r"^- `(\w+)\(", block, re.M) if h in HOOK_ORDER]


def _doc_contract(section: str) -> bool:
    start = section.find("### Communication contract")
    if start < 0:
        return True
    block = section[start:]
    return bool(re.search(r"\|\s*upload\s*\|\s*`control`", block)) and bool(
        re.search(r"\|\s*download\s*\|\s*`control`", block)
    )


# --- rendering the genome-owned parts of a file -------------------------------------------------------


def describe_gene(gene: Gene) -> str:
    variant = {"sqrt": "sqrt(number of samples)", "uniform": "equal weights"}.get(gene.variant, gene.variant)
    return gene.mechanism.summary.replace("{variant!r}", repr(gene.variant)).replace("{variant}", variant)


def _marker_lines(genome: Genome) -> list[str]:
    """The machine-readable genome line, wrapped (continuation lines are indented by 4 more spaces)."""
    tokens = []
    for gene in genome.genes:
        names = list(gene.mechanism.scalar_specs(gene.variant))
        tokens.append(gene.token + (f"({', '.join(names)})" if names else ""))
    text = f"{MARKER} {', '.join(tokens) if tokens else 'none'}"
    return textwrap.wrap(text, 100, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)


def _title(genome: Genome, baseline: RecipeSource) -> str:
    base = baseline.class_name
    if not genome.genes:
        if baseline.shipped == DEFAULT_BASELINE:
            return "FedAvg unchanged: every client, the full step budget, plain task loss."
        return f"{base} unchanged."
    title = f"{base} plus " + ", ".join(g.token for g in genome.genes) + "."
    return title if len(title) <= 96 else f"{base} plus {len(genome.genes)} mechanisms (listed below)."


def _otherwise(genome: Genome, baseline: RecipeSource) -> list[str]:
    """What the genome leaves to the baseline, as a docstring bullet (FedAvg's defaults spelled out)."""
    if baseline.shipped != DEFAULT_BASELINE:
        text = f"Otherwise as {baseline.class_name}: the hooks not written here are inherited from it."
        return textwrap.wrap(text, 100, initial_indent="- ", subsequent_indent="  ")
    untouched = [
        text
        for slot, text in (
            ("sampling", "all clients train every round"),
            ("steps", "clients use the full local step budget"),
            ("lr_schedule", "the client learning rate is constant"),
            ("server", "the server applies x <- x + server_lr * update"),
        )
        if genome.gene(slot) is None
    ]
    if not untouched:
        return []
    text = "Otherwise as FedAvg: " + "; ".join(untouched) + "."
    return textwrap.wrap(text, 100, initial_indent="- ", subsequent_indent="  ")


def class_docstring(genome: Genome, env: Environment) -> str:
    lines = [_title(genome, env.baseline), ""]
    if genome.genes:
        for gene in genome.genes:
            lines += textwrap.wrap(describe_gene(gene), 100, initial_indent="- ", subsequent_indent="  ")
        lines += _otherwise(genome, env.baseline)
        lines.append("")
    lines += _marker_lines(genome)
    return "\n    ".join(lines).replace("\n    \n", "\n\n") + "\n    "


def module_doc(baseline: RecipeSource) -> str:
    """The candidate file's module docstring."""
    if baseline.shipped:
        base = baseline.class_name
        return (
            f"Candidate recipe written by the evolve agent: libcst edits of the {base} baseline.\n\n"
            "The recipe class's docstring says what it does; its last line lists the mechanisms.\n"
        )
    first = (
        f"Candidate recipe written by the evolve agent: the {baseline.class_name} baseline "
        f"({baseline.label}) and a subclass of it made by libcst edits."
    )
    return (
        "\n".join(textwrap.wrap(first, 100))
        + "\n\nThe subclass's docstring says what it changes; its last line lists the mechanisms.\n"
    )


_SIG = {
    "model_variant": "def model_variant(self) -> str:",
    "select_clients": (
        "def select_clients(self, round_idx: int, num_clients: int, rng: torch.Generator) -> list[int]:"
    ),
    "broadcast": "def broadcast(self, round_idx: int, server_state: dict[str, Any]) -> Params:",
    "local_steps": "def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:",
    "client_lr": "def client_lr(self, round_idx: int, client: int) -> float:",
    "local_objective": (
        "def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:"
    ),
    "client_extras": "def client_extras(self, delta: Params, ctx: LocalContext) -> Params:",
    "aggregate": (
        "def aggregate(\n"
        "    self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]\n"
        ") -> Params:"
    ),
    "round_progress": "def round_progress(self, round_idx: int) -> float:",
}


def _method(name: str, doc: str, body: Sequence[str]) -> str:
    """A method's source at indentation 0 (libcst re-indents it inside the class)."""
    lines = textwrap.wrap(doc, 96)
    # String contents are not re-indented by libcst: continuation lines carry the method-body indent.
    text = lines[0] if len(lines) == 1 else "\n        ".join(lines) + "\n        "
    return _SIG[name] + "\n" + textwrap.indent(f'"""{text}"""\n' + "\n".join(body), "    ") + "\n"


def render_hooks(genome: Genome, env: Environment) -> dict[str, str]:
    """Source text of every method the genome needs (hooks and helpers), keyed by name."""
    rendered = {name: render(genome) for name, render in _RENDERERS.items()}
    return {name: text for name, text in rendered.items() if text is not None}


# One renderer per hook (and helper): each returns the method's source, or None when the genome leaves
# the hook to the baseline.


def _render_model_variant(genome: Genome) -> str | None:
    variant = genome.gene("variant")
    if variant is None:
        return None
    return _method(
        "model_variant", "The profile's registered model variant to train.", [f'return "{variant.variant}"']
    )


def _render_select_clients(genome: Genome) -> str | None:
    if genome.gene("sampling") is None:
        return None
    return _method(
        "select_clients",
        "A seeded random subset of about client_fraction of the clients, never empty.",
        [
            "count = min(num_clients, max(1, round(self.client_fraction * num_clients)))",
            "order = torch.randperm(num_clients, generator=rng)",
            "return sorted(int(c) for c in order[:count].tolist())",
        ],
    )


def _render_broadcast(genome: Genome) -> str | None:
    if not genome.has("scaffold"):
        return None
    return _method(
        "broadcast",
        "SCAFFOLD: send the server control variate c as the contract's control extras.",
        ["return scaffold_broadcast(server_state)"],
    )


_STEP_SCHEDULES: dict[str, list[str]] = {
    "ramp": [
        "# Ramp from steps_start_fraction of the budget up to the full budget at the last round.",
        "progress = self.round_progress(round_idx)",
        "fraction = self.steps_start_fraction + (1 - self.steps_start_fraction) * progress",
    ],
    "decay": [
        "# Decay from the full budget down to steps_end_fraction of it at the last round.",
        "progress = self.round_progress(round_idx)",
        "fraction = 1 - (1 - self.steps_end_fraction) * progress",
    ],
}
"""step_schedule's variants: the lines that set ``fraction`` of the step budget."""


def _render_local_steps(genome: Genome) -> str | None:
    steps = genome.gene("steps")
    if steps is None:
        return None
    body = [*_STEP_SCHEDULES[steps.variant], "return min(max_steps, max(1, round(fraction * max_steps)))"]
    return _method("local_steps", f"Local steps on a {steps.variant} schedule.", body)


_LR_SCHEDULES: dict[str, list[str]] = {
    "cosine": [
        "# Cosine decay from lr to lr_min_ratio * lr at the last round.",
        "progress = self.round_progress(round_idx)",
        "cosine = 0.5 * (1 + math.cos(math.pi * progress))",
        "return self.lr * (self.lr_min_ratio + (1 - self.lr_min_ratio) * cosine)",
    ],
    "step": [
        "# Multiply lr by lr_decay at half and again at three quarters of the rounds.",
        "progress = self.round_progress(round_idx)",
        "drops = int(progress >= 0.5) + int(progress >= 0.75)",
        "return self.lr * self.lr_decay**drops",
    ],
    "warmup": [
        "# Linear warm-up from warmup_start * lr to lr over the first warmup_fraction of rounds.",
        "warm_rounds = max(1, math.ceil(self.warmup_fraction * self.horizon))",
        "ramp = min(1.0, round_idx / warm_rounds)",
        "return self.lr * (self.warmup_start + (1 - self.warmup_start) * ramp)",
    ],
}
"""lr_schedule's variants: the body of ``client_lr``."""


def _render_client_lr(genome: Genome) -> str | None:
    schedule = genome.gene("lr_schedule")
    if schedule is None:
        return None
    return _method(
        "client_lr",
        f"Client learning rate on a {schedule.variant} schedule.",
        _LR_SCHEDULES[schedule.variant],
    )


_OBJECTIVE_TERMS: dict[str, tuple[str, list[str]]] = {
    "prox": (
        "a proximal term",
        [
            "# FedProx: stay close to the global parameters the client received.",
            "loss = loss + self.mu / 2 * proximal_term(model, ctx.global_params)",
        ],
    ),
    "l2": (
        "an L2 penalty",
        [
            "# Weight decay: an L2 penalty on the parameters.",
            "loss = loss + self.weight_decay / 2 * sum(p.pow(2).sum() for p in model.parameters())",
        ],
    ),
    "scaffold": (
        "the SCAFFOLD correction",
        [
            "# SCAFFOLD: a linear term whose gradient is c - c_i corrects the client's drift.",
            "loss = scaffold_correction(loss, model, ctx)",
        ],
    ),
}
"""The terms ``local_objective`` adds to the task loss, in this order: (words for the docstring, lines)."""


def _render_local_objective(genome: Genome) -> str | None:
    terms = [key for key in _OBJECTIVE_TERMS if genome.has(key)]
    if not terms:
        return None
    body = ["loss = task_loss"]
    words = ["the task loss"]
    for key in terms:
        words.append(_OBJECTIVE_TERMS[key][0])
        body += _OBJECTIVE_TERMS[key][1]
    body.append("return loss")
    doc = "The sum of " + ", ".join(words[:-1]) + " and " + words[-1] + "."
    return _method("local_objective", doc, body)


def _render_client_extras(genome: Genome) -> str | None:
    if not genome.has("scaffold"):
        return None
    return _method(
        "client_extras",
        "SCAFFOLD option II: c_i+ = c_i - c - delta / (steps * lr); upload c_i+ - c_i.",
        ["return scaffold_client_control(delta, ctx)"],
    )


def _render_round_progress(genome: Genome) -> str | None:
    schedule = genome.gene("lr_schedule")
    if genome.gene("steps") is None and (schedule is None or schedule.variant == "warmup"):
        return None
    return _method(
        "round_progress",
        "Fraction of the training rounds done: 0 at the first round, 1 at the last (horizon) round.",
        ["return min(1.0, round_idx / max(1, self.horizon - 1))"],
    )


# --- aggregate: client weights x delta transforms x combiner x server update [+ SCAFFOLD's c] ---------

_SQRT_WEIGHTS = [
    "# Client weights proportional to sqrt(n_k).",
    "roots = [math.sqrt(u.num_samples) for u in updates]",
    "weights = [r / sum(roots) for r in roots]",
]
_UNIFORM_WEIGHTS = "[1 / len(updates)] * len(updates)"

_TRANSFORMS: dict[str, tuple[str, list[str]]] = {
    "nova": (
        "FedNova-normalised",
        [
            "# FedNova: divide each delta by its local steps; rescale by the weighted mean step count.",
            "steps = [max(1, u.num_steps) for u in updates]",
            "tau_eff = sum(w * s for w, s in zip(weights, steps))",
            "deltas = [{k: d / s for k, d in delta.items()} for delta, s in zip(deltas, steps)]",
        ],
    ),
    "clip": (
        "norm-clipped",
        [
            "# Scale down deltas whose norm exceeds clip_multiplier times the median norm.",
            "norms = [math.sqrt(sum(float(d.pow(2).sum()) for d in delta.values())) for delta in deltas]",
            "bound = self.clip_multiplier * sorted(norms)[len(norms) // 2]",
            "scales = [min(1.0, bound / (norm + 1e-12)) for norm in norms]",
            "deltas = [{k: d * s for k, d in delta.items()} for delta, s in zip(deltas, scales)]",
        ],
    ),
}
"""Per-client delta transforms, in this order (slot -> words for the docstring, lines)."""

_COMBINERS: dict[str | None, tuple[str, list[str]]] = {
    None: ("mean", ["delta = {k: sum(w * d[k] for w, d in zip(weights, deltas)) for k in global_params}"]),
    "trimmed_mean": (
        "coordinate-wise trimmed mean",
        [
            "# Coordinate-wise trimmed mean: drop the trim_fraction largest and smallest values.",
            "cut = min(int(self.trim_fraction * len(deltas)), (len(deltas) - 1) // 2)",
            "delta = {}",
            "for k in global_params:",
            "    ordered = torch.sort(torch.stack([d[k] for d in deltas]), dim=0).values",
            "    delta[k] = ordered[cut : len(deltas) - cut].mean(dim=0)",
        ],
    ),
    "median": (
        "coordinate-wise median",
        [
            "# Coordinate-wise median of the client deltas.",
            "delta = {}",
            "for k in global_params:",
            "    delta[k] = torch.quantile(torch.stack([d[k] for d in deltas]), 0.5, dim=0)",
        ],
    ),
}
"""How the (transformed) client deltas become one delta (combiner key, None: the weighted mean)."""

_SECOND_MOMENTS = {
    "server_adam": ("Adam", "v[k] = adam_second_moment(v[k], d, self.beta2)"),
    "server_yogi": ("Yogi", "v[k] = yogi_second_moment(v[k], d, self.beta2)"),
    "server_adagrad": ("Adagrad", "v[k] = adagrad_second_moment(v[k], d)"),
}
"""The adaptive server optimisers: (name, the second-moment update line)."""


def _render_aggregate(genome: Genome) -> str | None:
    g = genome.gene
    slots = ("server", "combiner", "weights", "nova", "clip")
    if all(g(slot) is None for slot in slots) and not genome.has("scaffold"):
        return None
    # Client weights matter to the weighted mean and to FedNova's step rescaling, not to robust combiners.
    weighted = g("combiner") is None or g("nova") is not None
    words = [_weights_word(g("weights"), weighted)]
    if g("nova") is None and g("clip") is None and g("combiner") is None:
        body = _plain_mean(g("weights"))
    else:
        body = _combined_deltas(genome, weighted, words)
    if genome.has("scaffold"):
        body += _scaffold_server_lines(genome)
    body += _server_update(g("server"), words)
    doc = "New global parameters: " + ", ".join(words) + "."
    return _method("aggregate", doc, body)


def _weights_word(weights: Gene | None, weighted: bool) -> str:
    if not weighted:
        return "unweighted"
    if weights is None:
        return "sample-weighted"
    return "uniformly weighted" if weights.variant == "uniform" else "sqrt(n)-weighted"


def _plain_mean(weights: Gene | None) -> list[str]:
    """The weighted mean of the client deltas, with no transform and no robust combiner."""
    if weights is None:
        return ["delta = weighted_mean_delta(updates)"]
    if weights.variant == "uniform":
        lines = ["# Every client counts the same.", f"weights = {_UNIFORM_WEIGHTS}"]
    else:
        lines = list(_SQRT_WEIGHTS)
    return [*lines, "delta = weighted_mean_delta(updates, weights)"]


def _combined_deltas(genome: Genome, weighted: bool, words: list[str]) -> list[str]:
    """Client weights, per-client transforms and the combiner; appends their words to ``words``."""
    weights = genome.gene("weights")
    body: list[str] = []
    if weighted and weights is not None and weights.variant == "sqrt":
        body += _SQRT_WEIGHTS
    elif weighted:
        body.append(f"weights = {'sample_weights(updates)' if weights is None else _UNIFORM_WEIGHTS}")
    body.append("deltas = [u.delta for u in updates]")
    for slot, (word, lines) in _TRANSFORMS.items():
        if genome.gene(slot) is not None:
            words.append(word)
            body += lines
    combiner = genome.gene("combiner")
    word, lines = _COMBINERS[None if combiner is None else combiner.key]
    words.append(word)
    body += lines
    if genome.gene("nova") is not None:
        body.append("delta = {k: tau_eff * d for k, d in delta.items()}")
    return body


def _scaffold_server_lines(genome: Genome) -> list[str]:
    """SCAFFOLD's server control variate update (scaled by participation under client sampling)."""
    if genome.has("client_sampling"):
        return [
            "# SCAFFOLD: c moves by the mean change of the clients' control variates (x participation).",
            "scaffold_server_control(server_state, global_params, updates, self.client_fraction)",
        ]
    return [
        "# SCAFFOLD: c moves by the mean change of the clients' control variates.",
        "scaffold_server_control(server_state, global_params, updates)",
    ]


def _server_update(server: Gene | None, words: list[str]) -> list[str]:
    """The server step from ``delta`` to the new global parameters; appends its words to ``words``."""
    if server is None:
        words.append("server SGD step")
        return ["return {k: global_params[k] + self.server_lr * delta[k] for k in global_params}"]
    if server.key == "server_momentum":
        words.append("server momentum")
        return [
            "# Server momentum: v <- server_momentum * v + delta; x <- x + server_lr * v.",
            "zeros = {k: torch.zeros_like(d) for k, d in delta.items()}",
            'velocity = server_state.setdefault("velocity", zeros)',
            "for k, d in delta.items():",
            "    velocity[k] = heavy_ball(velocity[k], d, self.server_momentum)",
            "return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}",
        ]
    name, second_moment = _SECOND_MOMENTS[server.key]
    words.append(f"server {name}")
    return [
        f"# Server {name} on the pseudo-gradient delta: x <- x + server_lr * m / (sqrt(v) + tau).",
        'm = server_state.setdefault("m", {k: torch.zeros_like(d) for k, d in delta.items()})',
        'v = server_state.setdefault("v", {k: torch.zeros_like(d) for k, d in delta.items()})',
        "new: Params = {}",
        "for k, d in delta.items():",
        "    m[k] = first_moment(m[k], d, self.beta1)",
        f"    {second_moment}",
        "    new[k] = adaptive_step(global_params[k], m[k], v[k], self.server_lr, self.tau)",
        "return new",
    ]


_RENDERERS: dict[str, Callable[[Genome], str | None]] = {
    "model_variant": _render_model_variant,
    "select_clients": _render_select_clients,
    "broadcast": _render_broadcast,
    "local_steps": _render_local_steps,
    "client_lr": _render_client_lr,
    "local_objective": _render_local_objective,
    "client_extras": _render_client_extras,
    "aggregate": _render_aggregate,
    "round_progress": _render_round_progress,
}
"""The method renderers, by method name (every hook a mechanism touches, and the helpers)."""


# --- reading a file back -------------------------------------------------------------------------------


def _has_marker(docstring: str | None) -> bool:
    return docstring is not None and MARKER in docstring


def _recipe_class(module: cst.Module) -> cst.ClassDef | None:
    """The evolve class: the last module-level class whose docstring carries the ``Mechanisms:`` line."""
    found = [
        stmt
        for stmt in module.body
        if isinstance(stmt, cst.ClassDef) and _has_marker(stmt.get_docstring(clean=False))
    ]
    return found[-1] if found else None


def _parse_tokens(line: str) -> list[Gene]:
    text = re.sub(r"\([^)]*\)", "", line.split(MARKER, 1)[1])
    genes: list[Gene] = []
    for raw in text.replace(";", ",").split(","):
        token = raw.strip()
        if not token or token == "none":
            continue
        key, _, variant = token.partition("=")
        key, variant = key.strip(), variant.strip()
        if key in MECHANISMS:
            genes.append(Gene(key, variant))
    return genes


@lru_cache(maxsize=2048)  # a pure function of the text (the Genome it returns is never mutated)
def read_genome(source: str) -> Genome | None:
    """The genome written in an evolve candidate file (None: not such a file, or unreadable).

    Reading needs no edit, so it uses Python's own parser (fast); every edit goes through libcst.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and _has_marker(ast.get_docstring(node, clean=False))
    ]
    if not classes:
        return None
    cls = classes[-1]
    doc = ast.get_docstring(cls, clean=False) or ""
    at = doc.rfind(MARKER)
    by_slot: dict[str, Gene] = {}
    for gene in _parse_tokens(" ".join(doc[at:].split())):
        by_slot.setdefault(gene.slot, gene)
    values: dict[str, float] = {}
    for stmt in cls.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id == "scalar"
            and stmt.value.args
        ):
            try:
                value = ast.literal_eval(stmt.value.args[0])
            except (ValueError, SyntaxError, TypeError):
                continue
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                values[stmt.targets[0].id] = float(value)
    return Genome(tuple(by_slot[s] for s in SLOTS if s in by_slot), values)


# --- the skeleton and the imports ------------------------------------------------------------------------


@lru_cache(maxsize=64)  # a pure function of the text (the baseline's, parsed once per render otherwise)
def _module_names(source: str) -> frozenset[str]:
    """Names a module binds at its top level (imports, classes, functions, assignments)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(names)


def _class_name(baseline: RecipeSource) -> str:
    """The evolve class's name: :data:`CLASS_NAME`, numbered if the user's file already binds it."""
    if baseline.shipped:
        return CLASS_NAME
    taken = _module_names(baseline.text)
    return next(n for n in (CLASS_NAME, *(f"{CLASS_NAME}{i}" for i in range(2, 100))) if n not in taken)


def skeleton(baseline: RecipeSource) -> str:
    """The file a first-generation candidate is edited from: the baseline plus an empty evolve class.

    A shipped baseline is imported from ``afr.recipe``; a user's file is copied whole (its class is not
    importable) and the evolve class derives from its class.
    """
    base = baseline.class_name
    stub = (
        f"class {_class_name(baseline)}({base}):\n"
        f'    """{base}.\n\n    {MARKER} none\n    """\n\n'
        f'    name = "{RECIPE_NAME}"\n'
    )
    if not baseline.shipped:
        return baseline.text.rstrip("\n") + "\n\n\n" + stub
    return (
        f'"""{base} baseline."""\n\nfrom __future__ import annotations\n\n'
        f"from afr.recipe import {base}, scalar\n\n\n" + stub
    )


_BLANK = (cst.EmptyLine(indent=False),)

RECIPE_EXPORTS = frozenset(recipe.__all__)
"""Names a rendered class may import from ``afr.recipe`` (imported exactly when it uses them)."""

MAX_LINE = 110
"""Longest line of a generated file (the project's line length)."""

_STDLIB = ("math", "typing")


def _from_import(module: str, names: Sequence[str]) -> str:
    """``from module import names`` on one line, or wrapped one name per line as isort does."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= MAX_LINE:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def _isort_key(name: str) -> tuple[bool, str]:
    """isort's order within one ``from`` import: classes (capitalised) before functions."""
    return (not name[:1].isupper(), name)


def _needed_imports(used: set[str], recipe_names: set[str]) -> list[tuple[str, tuple[str, ...] | None]]:
    """(module, names) the evolve class needs, in isort order (names None: ``import module``)."""
    out: list[tuple[str, tuple[str, ...] | None]] = []
    if "math" in used:
        out.append(("math", None))
    if "Any" in used:
        out.append(("typing", ("Any",)))
    if "torch" in used:
        out.append(("torch", None))
    torch_names = tuple(n for n in ("Tensor", "nn") if n in used)
    if torch_names:
        out.append(("torch", torch_names))
    out.append(("afr.recipe", tuple(sorted(recipe_names, key=_isort_key))))
    return out


def _group(module: str) -> int:
    """isort's section of a module: future, standard library, third party, first party (afr)."""
    if module == "__future__":
        return 0
    return 1 if module in _STDLIB else (3 if module.partition(".")[0] == "afr" else 2)


def _statement(line: str, blank: bool = False) -> cst.SimpleStatementLine:
    stmt = cst.parse_statement(line)
    assert isinstance(stmt, cst.SimpleStatementLine)
    return stmt.with_changes(leading_lines=_BLANK if blank else ())


def _import_line(module: str, names: tuple[str, ...] | None) -> str:
    return f"import {module}" if names is None else _from_import(module, names)


def shipped_imports(used: set[str], baseline: RecipeSource) -> list[cst.SimpleStatementLine]:
    """Exactly the imports the evolve class uses, grouped and ordered as isort does."""
    recipe_names = {n for n in RECIPE_EXPORTS if n in used} | {baseline.class_name, "scalar"}
    lines = [("__future__", "from __future__ import annotations")]
    lines += [(m, _import_line(m, names)) for m, names in _needed_imports(used, recipe_names)]
    return [
        _statement(line, blank=i == 0 or _group(module) != _group(lines[i - 1][0]))
        for i, (module, line) in enumerate(lines)
    ]


def user_imports(used: set[str], baseline: RecipeSource) -> list[cst.SimpleStatementLine]:
    """The user's file's imports, kept, plus those the evolve class needs and the file lacks.

    A missing name joins the file's ``from <module> import ...`` when it has one; otherwise its import
    goes after the file's imports of the same isort section (stdlib, third party, afr).
    """
    bound = _module_names(baseline.text)
    recipe_names = {n for n in RECIPE_EXPORTS if n in used} | {"scalar"}
    missing: dict[tuple[str, bool], list[str]] = {}  # (module, plain import) -> names
    for module, names in _needed_imports(used, recipe_names):
        for name in names or (module,):
            if name not in bound:
                missing.setdefault((module, names is None), []).append(name)
    kept: list[tuple[int, cst.SimpleStatementLine]] = []
    for stmt in cst.parse_module(baseline.text).body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(
            stmt.body[0], cst.Import | cst.ImportFrom
        ):
            merged = _merged_from_import(stmt, missing)
            stmt = stmt if merged is None else merged.with_changes(leading_lines=stmt.leading_lines)
            kept.append((_group(_imported_module(stmt.body[0])), stmt))
    for (module, plain), names in missing.items():
        group = _group(module)
        at = sum(1 for g, _ in kept if g <= group)  # the user's imports are assumed in isort order
        stmt = _statement(
            _import_line(module, None if plain else tuple(names)), at > 0 and kept[at - 1][0] != group
        )
        if at < len(kept) and kept[at][0] != group:  # a new section starts after the added line
            following = kept[at][1]
            if not any(line.comment is None for line in following.leading_lines):
                kept[at] = (
                    kept[at][0],
                    following.with_changes(leading_lines=_BLANK + tuple(following.leading_lines)),
                )
        kept.insert(at, (group, stmt))
    return [stmt for _, stmt in kept]


def _imported_module(small: cst.BaseSmallStatement) -> str:
    if isinstance(small, cst.ImportFrom):
        return "." if small.relative or small.module is None else cst.Module([]).code_for_node(small.module)
    assert isinstance(small, cst.Import)
    return cst.Module([]).code_for_node(small.names[0].name)


def _merged_from_import(
    stmt: cst.SimpleStatementLine, missing: dict[tuple[str, bool], list[str]]
) -> cst.SimpleStatementLine | None:
    """``stmt`` with the missing names of its module added (None: not a plain ``from m import a, b``)."""
    small = stmt.body[0]
    if len(stmt.body) != 1 or not isinstance(small, cst.ImportFrom) or small.relative:
        return None
    if isinstance(small.names, cst.ImportStar) or any(a.asname is not None for a in small.names):
        return None
    module = cst.Module([]).code_for_node(small.module) if small.module is not None else ""
    extra = missing.pop((module, False), None)
    if extra is None:
        return None
    names = {cst.Module([]).code_for_node(a.name) for a in small.names} | set(extra)
    return _statement(_from_import(module, sorted(names, key=_isort_key)))


def _docstring_line(text: str) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(cst.SimpleString(f'"""{text}"""'))])


class ImportWriter(cst.CSTTransformer):
    """Replace the module's imports by ``imports`` (after the module docstring)."""

    def __init__(self, imports: Sequence[cst.SimpleStatementLine]) -> None:
        super().__init__()
        self.imports = list(imports)

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False  # only module-level statements change

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body = list(updated_node.body)
        docstring = body[:1] if updated_node.get_docstring() is not None else []
        rest = [
            s
            for s in body[len(docstring) :]
            if not (
                isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Import | cst.ImportFrom)
            )
        ]
        if rest:  # two blank lines after the imports; comments above the first statement stay
            comments = tuple(line for line in rest[0].leading_lines if line.comment is not None)
            rest[0] = rest[0].with_changes(leading_lines=_BLANK * 2 + comments)
        imports = list(self.imports)
        if imports:
            imports[0] = imports[0].with_changes(leading_lines=_BLANK if docstring else ())
        return updated_node.with_changes(body=[*docstring, *imports, *rest])


class ModuleDocWriter(cst.CSTTransformer):
    """Set the module docstring."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body = list(updated_node.body)
        line = _docstring_line(self.text)
        if updated_node.get_docstring() is not None:
            body[0] = line.with_changes(leading_lines=body[0].leading_lines)
        else:
            body.insert(0, line)
        return updated_node.with_changes(body=body)


class RecipeClassWriter(cst.CSTTransformer):
    """Rewrite the evolve class ``target``: docstring, scalar declarations, constants, the genome's methods.

    Existing scalar lines are updated in place, missing ones inserted, stale ones removed; methods
    owned by the library (hooks and helpers) are replaced by their rendering or removed; anything else
    in the class body is kept after them.
    """

    def __init__(
        self,
        target: str,
        docstring: str,
        scalars: Mapping[str, str],
        constants: Mapping[str, str],
        methods: Mapping[str, str],
    ) -> None:
        super().__init__()
        self.target = target
        self.docstring, self.scalars, self.constants, self.methods = docstring, scalars, constants, methods
        self.done = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # methods are replaced whole, never edited inside

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
        if self.done or updated_node.name.value != self.target:
            return updated_node
        self.done = True
        owned_methods = set(HOOK_ORDER) | set(HELPERS)
        owned_names = set(self.scalars) | set(self.constants) | {"name"}
        existing: dict[str, cst.SimpleStatementLine] = {}
        kept: list[cst.BaseStatement] = []
        for i, stmt in enumerate(updated_node.body.body):
            if i == 0 and updated_node.get_docstring(clean=False) is not None:
                continue
            if isinstance(stmt, cst.FunctionDef):
                if stmt.name.value not in owned_methods:
                    kept.append(stmt)
                continue
            target = _assigned_name(stmt)
            if target is not None and isinstance(stmt, cst.SimpleStatementLine):
                if target in owned_names:
                    existing[target] = stmt
                continue  # stale scalars/constants disappear with their mechanism
            kept.append(stmt)
        body: list[cst.BaseStatement] = [_docstring_line(self.docstring)]
        body.append(cst.parse_statement(f'name = "{RECIPE_NAME}"').with_changes(leading_lines=_BLANK))
        for group in (self.scalars, self.constants):
            for j, (key, expr) in enumerate(group.items()):
                line = cst.parse_statement(f"{key} = {expr}")
                if key in existing:  # edit the existing declaration's value, keep its comments
                    old = existing[key]
                    assign = old.body[0]
                    assert isinstance(assign, cst.Assign)
                    new_value = line.body[0].value  # type: ignore[attr-defined]
                    line = old.with_changes(body=[assign.with_changes(value=new_value)])
                body.append(line.with_changes(leading_lines=_BLANK if j == 0 else ()))
        for name in (*HOOK_ORDER, *HELPERS):
            if name in self.methods:
                method = cst.parse_statement(self.methods[name])
                body.append(method.with_changes(leading_lines=_BLANK))
        body.extend(kept)
        return updated_node.with_changes(body=updated_node.body.with_changes(body=body))


def _assigned_name(stmt: cst.BaseStatement) -> str | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            target = small.targets[0].target
            if isinstance(target, cst.Name):
                return target.value
    return None


def write_recipe(parent_source: str | None, genome: Genome, env: Environment) -> str:
    """Apply ``genome`` to ``parent_source`` (an evolve file; else the baseline's skeleton) with libcst."""
    module = None
    if parent_source is not None and read_genome(parent_source) is not None:
        try:
            module = cst.parse_module(parent_source)
        except Exception:
            module = None
    if module is None:
        module = cst.parse_module(skeleton(env.baseline))
    target = _recipe_class(module)
    assert target is not None
    specs = env.specs(genome)
    scalars = {key: render_scalar(spec, genome.values.get(key)) for key, spec in specs.items()}
    methods = render_hooks(genome, env)
    constants = {"horizon": str(env.horizon)} if "round_progress" in methods or "client_lr" in methods else {}
    docstring = class_docstring(genome, env)
    module = module.visit(RecipeClassWriter(target.name.value, docstring, scalars, constants, methods))
    cls = _recipe_class(module)
    assert cls is not None
    used = {node.id for node in ast.walk(ast.parse(module.code_for_node(cls))) if isinstance(node, ast.Name)}
    module = module.visit(ModuleDocWriter(module_doc(env.baseline).rstrip("\n") + "\n"))
    imports = (shipped_imports if env.baseline.shipped else user_imports)(used, env.baseline)
    module = module.visit(ImportWriter(imports))
    code = module.code
    return code if code.endswith("\n") else code + "\n"


@lru_cache(maxsize=2048)  # a pure function of the text
def normalise_source(source: str) -> str:
    """The file modulo formatting, comments and docstrings (for duplicate detection)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source.strip()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


def genome_values(genome: Genome, env: Environment) -> dict[str, float]:
    """The effective value of every declared scalar (defaults where the genome has none)."""
    return {
        key: clip_tidy(spec, genome.values[key]) if key in genome.values else spec.default
        for key, spec in env.specs(genome).items()
    }
