"""What every mechanism module builds on: scalar helpers, the mechanism/gene/genome types, the registry.

Each family module (``server``, ``combiners``, ``weights``, ...) declares its :class:`Mechanism` entries
with :func:`register`, beside the code fragments that render them; the package imports every family, so
:data:`MECHANISMS` is complete once :mod:`afr.agents.mechanisms` is imported.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...recipe import HOOKS, Scalar

HOOK_ORDER = HOOKS

SLOTS: tuple[str, ...] = (
    "server",
    "combiner",
    "weights",
    "nova",
    "clip",
    "prox",
    "l2",
    "scaffold",
    "lr_schedule",
    "steps",
    "variant",
    "sampling",
)
"""The genome's slots, in the order its genes are listed (and the library's mechanisms are ordered)."""


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


def scalar_spec(default: float, low: float, high: float, log: bool = False) -> Scalar:
    """A mechanism's scalar range (the short form the family modules declare their scalars with)."""
    return Scalar(default, low, high, log)


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
    variant_words: Mapping[str, str] = field(default_factory=dict)
    """How the summary's ``{variant}`` reads for a variant (default: the variant's name)."""

    def scalar_specs(self, variant: str) -> Mapping[str, Scalar]:
        return self.scalars.get(variant, self.scalars.get("", {}))


MECHANISMS: dict[str, Mechanism] = {}
"""The library by key, in :data:`SLOTS` order (in declaration order within a slot)."""


def register(*mechanisms: Mechanism) -> None:
    """Add ``mechanisms`` to :data:`MECHANISMS`, keeping it in slot order whatever the import order."""
    for mech in mechanisms:
        if mech.slot not in SLOTS:
            raise ValueError(f"mechanism {mech.key!r}: unknown slot {mech.slot!r}; add it to SLOTS")
        if mech.key in MECHANISMS:
            raise ValueError(f"mechanism {mech.key!r} is registered twice")
    ordered = sorted([*MECHANISMS.values(), *mechanisms], key=lambda m: SLOTS.index(m.slot))  # stable
    MECHANISMS.clear()
    MECHANISMS.update((m.key, m) for m in ordered)


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


# --- the methods a mechanism renders ---------------------------------------------------------------

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


def method(name: str, doc: str, body: Sequence[str]) -> str:
    """A method's source at indentation 0 (libcst re-indents it inside the class)."""
    lines = textwrap.wrap(doc, 96)
    # String contents are not re-indented by libcst: continuation lines carry the method-body indent.
    text = lines[0] if len(lines) == 1 else "\n        ".join(lines) + "\n        "
    return _SIG[name] + "\n" + textwrap.indent(f'"""{text}"""\n' + "\n".join(body), "    ") + "\n"
