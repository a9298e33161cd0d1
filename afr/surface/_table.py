"""Surface tables: the allow-list of code a candidate recipe may contain, one table per profile.

Every table is the COMMON default below plus the profile YAML's optional ``surface:`` block::

    surface:
      mutable_hooks: [local_objective, aggregate]   # only these hooks may be overridden
      extra_calls: [torch.special.expit]
      extra_values: [torch.int8]
      extra_imports: {torch.special: null}          # null: `import M` allowed; or a list of names
      max_lines: 300                                # any size limit may be overridden
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from ..profiles import Budget, CommunicationContract, Profile, make_profile, profile_names
from ..recipe import HOOKS, FedAvg, Recipe, RecipeSource, Scalar, recipe_source

__all__ = ["SurfaceTable", "surface_table", "all_tables", "HOOKS", "SURFACE_KEYS"]

"""The :class:`~afr.recipe.Recipe` methods a candidate may override, in the engine's call order."""

SURFACE_KEYS = (
    "mutable_hooks",
    "extra_calls",
    "extra_values",
    "extra_imports",
    "max_bytes",
    "max_lines",
    "max_nodes",
    "max_depth",
    "max_string",
)
"""Keys accepted in a profile YAML's ``surface:`` block."""

RECIPE_PACKAGE = "afr.recipe"
# The private submodules a shipped recipe imports from (relatively); other private modules stay closed.
RECIPE_PRIVATE_MODULES = ("_base", "_ops", "_scalar")
# The recipe registry and loaders (afr/recipe/_registry.py) are not for recipes: `recipe_class` executes
# arbitrary .py files, `recipe_source` reads any file, `RECIPES` is the engine's table of shipped recipes.
RECIPE_EXCLUDED = frozenset(
    {"recipe_class", "RECIPES", "RecipeSource", "recipe_source", "find_recipe_class", "DEFAULT_BASELINE"}
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BUILTIN_CALLS = _words(
    """abs all any bool dict divmod enumerate filter float frozenset int isinstance iter len list map max min
    next pow range reversed round set sorted str sum super staticmethod tuple zip"""
)
BUILTIN_EXCEPTIONS = _words(
    """ArithmeticError AssertionError Exception FloatingPointError IndexError KeyError LookupError
    NotImplementedError OverflowError RuntimeError StopIteration TypeError ValueError ZeroDivisionError"""
)
BUILTIN_VALUES = _words("True False None NotImplemented Ellipsis")
BUILTIN_NAMES = frozenset(dir(builtins))
"""Every builtin, to tell a builtin from a name the candidate defines."""

TORCH_CALLS = _words(
    """abs add addcdiv addcmul all allclose any arange argmax argmin argsort as_tensor bernoulli cat ceil
    clamp clamp_max clamp_min clip concat cos cosine_similarity count_nonzero cumprod cumsum diag dist div dot
    einsum enable_grad eq equal exp expm1 eye finfo flatten floor full full_like ge gt is_floating_point
    is_tensor isfinite isinf isnan kthvalue le lerp linspace log log1p log_softmax logical_and logical_not
    logical_or logsumexp lt matmul max maximum mean median min minimum mul multinomial nan_to_num nanmean
    nansum ne neg no_grad norm numel ones ones_like outer pow prod quantile rand rand_like randint randn
    randn_like randperm reciprocal relu reshape round rsqrt sigmoid sign sin softmax sort sqrt square stack
    std sub sum tanh tensor topk trace var where zeros zeros_like"""
)
TORCH_LINALG_CALLS = _words("norm vector_norm matrix_norm")
FUNCTIONAL_CALLS = _words(
    """binary_cross_entropy binary_cross_entropy_with_logits cosine_similarity cross_entropy dropout gelu
    huber_loss kl_div l1_loss log_softmax logsigmoid mse_loss nll_loss normalize one_hot pairwise_distance
    relu sigmoid silu smooth_l1_loss softmax softplus tanh"""
)
TORCH_VALUES = _words(
    """Generator Size Tensor bfloat16 bool device double dtype e float float16 float32 float64 half inf
    int32 int64 long nan pi"""
)

FORBIDDEN_NAMES = _words(
    """__import__ breakpoint compile copyright credits delattr eval exec exit getattr globals hasattr help id
    input license locals memoryview object open quit setattr type vars"""
)
ATTRIBUTE_BUILTINS = ("getattr", "setattr", "delattr", "hasattr")
"""Forbidden names that are allowed as a call whose attribute argument is a string literal."""

FORBIDDEN_ATTRIBUTES = (
    # tensor internals and autograd plumbing
    _words(
        """data storage untyped_storage set_ share_memory_ data_ptr grad grad_fn backward requires_grad_
        register_hook register_forward_hook register_forward_pre_hook register_full_backward_hook
        register_buffer register_parameter load_state_dict apply add_module register_module"""
    )
    # uninitialised memory (it may still hold bytes freed by the parent) and storage shared without
    # version counters: a candidate never needs them
    | _words(
        """new_empty new_empty_strided resize_ resize_as_ to_empty unsafe_split unsafe_chunk
        unsafe_split_with_sizes"""
    )
    # numpy views share storage without autograd's version counters (in-place edits would go unseen)
    | _words("numpy tofile dump dumps ctypes")
    # forward passes besides the engine's own (`model.forward(x)`, submodules) spend unbudgeted compute
    | _words("forward children named_children modules named_modules get_submodule")
    # str.format walks attributes inside the format string ("{0.__class__}"); ABC.register is global state
    | _words("format format_map mro register")
    # frames, code objects, generators, coroutines, tracebacks
    | _words(
        """f_back f_builtins f_code f_globals f_locals f_trace gi_code gi_frame gi_yieldfrom cr_await
        cr_code cr_frame ag_await ag_code ag_frame tb_frame tb_next co_code co_consts co_names func_globals
        im_func im_self"""
    )
)
FORBIDDEN_ATTRIBUTE_PREFIXES = ("_", "register_")

CONTEXT_MANAGERS = frozenset({"torch.no_grad", "torch.enable_grad"})


@dataclass(frozen=True)
class SurfaceTable:
    """The allow-list a candidate recipe is validated against, for one profile.

    Dotted names are canonical: a name re-exported by ``afr.recipe`` is spelled ``afr.recipe.<name>``
    whichever submodule it is imported from. Undotted names in :attr:`allowed_calls` are builtins.
    A ``"module.*"`` entry allows every public attribute of that module.
    """

    profile: str
    baseline: str
    """The class candidates derive from (the campaign's baseline recipe)."""
    baseline_label: str
    """Where that class is written (``afr/recipe/fedavg.py`` or a user's file)."""
    recipe_bases: tuple[str, ...]
    """Classes of ``afr.recipe`` a candidate class may derive from."""
    mutable_hooks: Mapping[str, tuple[str, ...]]
    """Hook name -> exact parameter names (``self`` first) of the hooks a candidate may override."""
    frozen_hooks: Mapping[str, tuple[str, ...]]
    """Hooks this profile does not let a candidate override."""
    reserved_names: frozenset[str]
    """Non-hook public attributes of :class:`~afr.recipe.Recipe` a candidate may not redefine."""
    inherited_scalars: frozenset[str]
    """Scalars declared by the recipe bases: a candidate may not assign them on ``self``."""
    model_variants: tuple[str, ...]
    tunable_scalars: Mapping[str, Scalar]
    """The baseline's declared scalars with this profile's ranges (the control arm's search space)."""
    budget: Budget
    """Rounds, local steps and batch size of one FL run (the step budget a run may not exceed)."""
    allowed_imports: Mapping[str, frozenset[str] | None]
    """Module -> names importable with ``from M import ...``; None: ``import M`` allowed too."""
    allowed_calls: frozenset[str]
    allowed_values: frozenset[str]
    """Module attributes and builtins usable as values (not called), beside every allowed call."""
    allowed_context_managers: frozenset[str]
    forbidden_names: frozenset[str]
    forbidden_attributes: frozenset[str]
    forbidden_attribute_prefixes: tuple[str, ...]
    contract: CommunicationContract
    max_bytes: int = 20_000
    max_lines: int = 400
    max_nodes: int = 3_000  # weighted as libcst sees them: < 100 ms (benchmarks/validator_worst_case.py)
    max_depth: int = 100
    max_string: int = 2_000
    modules: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every allowed module and its parent packages (derived)."""

    def __post_init__(self) -> None:
        parents = {m.rsplit(".", i)[0] for m in self.allowed_imports for i in range(m.count(".") + 1)}
        object.__setattr__(self, "modules", frozenset(parents))

    @property
    def hooks(self) -> Mapping[str, tuple[str, ...]]:
        """Every hook, mutable or frozen."""
        return MappingProxyType({**self.mutable_hooks, **self.frozen_hooks})

    def attribute_allowed(self, attr: str) -> bool:
        """Whether ``obj.<attr>`` passes the attribute rules."""
        return attr not in self.forbidden_attributes and not attr.startswith(
            self.forbidden_attribute_prefixes
        )

    def call_allowed(self, dotted: str) -> bool:
        """Whether the canonical dotted name may be called."""
        return _matches(dotted, self.allowed_calls, self)

    def value_allowed(self, dotted: str) -> bool:
        """Whether the canonical dotted name may be used as a value (passed, compared, stored)."""
        return _matches(dotted, self.allowed_calls, self) or _matches(dotted, self.allowed_values, self)

    def constructor_only_as_type(self, dotted: str) -> bool:
        """Whether an allowed value is callable but not an allowed call (``torch.Tensor``, ``nn.Module``,
        ``torch.Generator``, ``torch.device``): such a value may only be read where it cannot be called.

        Checked by value, not by name: any alias of it would call the same constructor. Recipe classes of
        ``afr.recipe`` stay usable (a recipe may build its own helper objects from them).
        """
        if self.call_allowed(dotted) or not self.value_allowed(dotted) or "." not in dotted:
            return False
        return not dotted.startswith(f"{RECIPE_PACKAGE}.") and callable(_resolve_object(dotted))


@lru_cache(maxsize=1024)
def _resolve_object(dotted: str) -> Any:
    """The object a canonical dotted name stands for (None if it cannot be imported)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
        return obj
    return None


def _matches(dotted: str, names: frozenset[str], table: SurfaceTable) -> bool:
    if dotted in names:
        return True
    module, _, attr = dotted.rpartition(".")
    while module:
        if f"{module}.*" in names:
            rest = dotted[len(module) + 1 :].split(".")
            return all(table.attribute_allowed(part) for part in rest)
        module = module.rpartition(".")[0]
    return False


def _hook_signatures() -> dict[str, tuple[str, ...]]:
    out = {}
    for hook in HOOKS:
        method = vars(Recipe)[hook]
        out[hook] = tuple(inspect.signature(method).parameters)
    return out


def _recipe_imports() -> dict[str, frozenset[str] | None]:
    package = importlib.import_module(RECIPE_PACKAGE)
    public = frozenset(package.__all__) - RECIPE_EXCLUDED
    imports: dict[str, frozenset[str] | None] = {RECIPE_PACKAGE: public}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") and info.name not in RECIPE_PRIVATE_MODULES:
            continue
        module = importlib.import_module(f"{RECIPE_PACKAGE}.{info.name}")
        imports[module.__name__] = frozenset(n for n in public if hasattr(module, n))
    return imports


def _recipe_bases() -> tuple[str, ...]:
    package = importlib.import_module(RECIPE_PACKAGE)
    found = [
        name
        for name in package.__all__
        if inspect.isclass(obj := getattr(package, name)) and issubclass(obj, FedAvg)
    ]
    return tuple(found)


def _common() -> dict[str, Any]:
    recipe_imports = _recipe_imports()
    recipe_public = recipe_imports[RECIPE_PACKAGE] or frozenset()
    package = importlib.import_module(RECIPE_PACKAGE)
    helpers = {n for n in recipe_public if inspect.isfunction(getattr(package, n))}
    calls = (
        BUILTIN_CALLS
        | BUILTIN_EXCEPTIONS
        | {"math.*"}
        | {f"torch.{n}" for n in TORCH_CALLS}
        | {f"torch.linalg.{n}" for n in TORCH_LINALG_CALLS}
        | {f"torch.nn.functional.{n}" for n in FUNCTIONAL_CALLS}
        | {f"{RECIPE_PACKAGE}.{n}" for n in helpers}
    )
    values = (
        BUILTIN_VALUES
        | {f"torch.{n}" for n in TORCH_VALUES}
        | {"torch.nn.Module", "torch.nn.Parameter", "typing.Any"}
        | {"collections.abc.Callable", "collections.abc.Iterable", "collections.abc.Mapping"}
        | {"collections.abc.Sequence"}
        | {f"{RECIPE_PACKAGE}.{n}" for n in recipe_public}
    )
    imports: dict[str, frozenset[str] | None] = {
        "__future__": frozenset({"annotations"}),
        "typing": frozenset({"Any"}),
        "collections.abc": frozenset({"Callable", "Iterable", "Mapping", "Sequence"}),
        "math": None,
        "torch": None,
        "torch.nn": frozenset({"functional", "Module", "Parameter"}),
        "torch.nn.functional": None,
        **recipe_imports,
    }
    hooks = _hook_signatures()
    reserved = frozenset(n for n in vars(Recipe) if not n.startswith("_") and n not in hooks)
    return {
        "recipe_bases": _recipe_bases(),
        "hooks": hooks,
        "reserved_names": reserved,
        "inherited_scalars": frozenset(
            name for base in _recipe_bases() for name in getattr(package, base).declared_scalars()
        ),
        "allowed_imports": imports,
        "allowed_calls": frozenset(calls),
        "allowed_values": frozenset(values),
        "allowed_context_managers": CONTEXT_MANAGERS,
        "forbidden_names": FORBIDDEN_NAMES,
        "forbidden_attributes": FORBIDDEN_ATTRIBUTES,
        "forbidden_attribute_prefixes": FORBIDDEN_ATTRIBUTE_PREFIXES,
    }


@lru_cache(maxsize=1)
def _common_cached() -> dict[str, Any]:
    return _common()


def _names(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{value!r} is not a list of names", where=where, fix="give a YAML list of strings")
    names = [str(v) for v in value]
    bad = [n for n in names if not all(part.isidentifier() or part == "*" for part in n.split("."))]
    if bad:
        raise ConfigError(
            f"malformed dotted names {bad}", where=where, fix="use names like torch.special.expit"
        )
    return frozenset(names)


def _build(profile: Profile, baseline: RecipeSource) -> SurfaceTable:
    common = _common_cached()
    surface = dict(profile.cfg.get("surface") or {})
    where = f"afr/conf/profile/{profile.name}.yaml: surface"
    unknown = sorted(set(surface) - set(SURFACE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown surface key(s) {', '.join(unknown)}", where=where, fix=f"use {', '.join(SURFACE_KEYS)}"
        )
    hooks: dict[str, tuple[str, ...]] = common["hooks"]
    mutable = set(hooks)
    if surface.get("mutable_hooks") is not None:
        mutable = set(_names(surface["mutable_hooks"], f"{where}.mutable_hooks"))
        if mutable - set(hooks):
            raise ConfigError(
                f"unknown hook(s) {', '.join(sorted(mutable - set(hooks)))}",
                where=f"{where}.mutable_hooks",
                fix=f"choose among {', '.join(hooks)}",
            )
    imports = dict(common["allowed_imports"])
    for module, names in (surface.get("extra_imports") or {}).items():
        extra = None if names is None else _names(names, f"{where}.extra_imports.{module}")
        old = imports.get(str(module), frozenset())
        imports[str(module)] = None if extra is None or old is None else old | extra
    extra_calls = _names(surface.get("extra_calls") or [], f"{where}.extra_calls")
    extra_values = _names(surface.get("extra_values") or [], f"{where}.extra_values")
    limits = {k: int(surface[k]) for k in SURFACE_KEYS if k.startswith("max_") and k in surface}
    return SurfaceTable(
        profile=profile.name,
        baseline=baseline.class_name,
        baseline_label=baseline.label,
        recipe_bases=common["recipe_bases"],
        mutable_hooks=MappingProxyType({h: p for h, p in hooks.items() if h in mutable}),
        frozen_hooks=MappingProxyType({h: p for h, p in hooks.items() if h not in mutable}),
        reserved_names=common["reserved_names"],
        inherited_scalars=common["inherited_scalars"],
        model_variants=tuple(sorted(profile.model_variants)),
        tunable_scalars=MappingProxyType(profile.scalar_space(baseline)),
        budget=profile.budget,
        allowed_imports=MappingProxyType(imports),
        allowed_calls=common["allowed_calls"] | extra_calls,
        allowed_values=common["allowed_values"] | extra_values,
        allowed_context_managers=common["allowed_context_managers"],
        forbidden_names=common["forbidden_names"],
        forbidden_attributes=common["forbidden_attributes"],
        forbidden_attribute_prefixes=common["forbidden_attribute_prefixes"],
        contract=profile.contract,
        **limits,
    )


@cache
def _shipped(name: str) -> SurfaceTable:
    profile = make_profile(name)
    return _build(profile, recipe_source(profile.baseline))


def surface_table(
    profile: str | Profile, cfg: Mapping[str, Any] | None = None, *, baseline: RecipeSource | None = None
) -> SurfaceTable:
    """The surface table of a profile: the common default plus its config's ``surface:`` block.

    ``profile`` is a built profile (a campaign passes the one it runs, with every override applied) or a
    name, with ``cfg`` replacing the shipped YAML (as for :func:`afr.profiles.make_profile`). ``baseline``
    (default: the profile's) sets the tunable scalars and the class candidates derive from. No data is loaded.
    """
    if isinstance(profile, str):
        if cfg is None and baseline is None:
            return _shipped(profile)
        profile = make_profile(profile, cfg)
    return _build(profile, baseline if baseline is not None else recipe_source(profile.baseline))


def all_tables() -> dict[str, SurfaceTable]:
    """One table per shipped profile (found from the YAMLs), by profile name (sorted)."""
    return {name: surface_table(name) for name in profile_names()}
