"""The task-profile concept: what one federated task fixes for every recipe run on it."""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..data import DataSource, profile_dir, require
from ..errors import ConfigError
from ..recipe import DEFAULT_BASELINE, Recipe, RecipeSource, Scalar
from ._contract import CommunicationContract

__all__ = [
    "Profile",
    "ClientData",
    "LinearHead",
    "Budget",
    "Evaluation",
    "Part",
    "TRAINING_PARTS",
    "VerdictSpec",
    "resolve_device",
    "resolve_autocast",
    "AUTOCAST_MODES",
]

Part = Literal["fit", "val", "train", "test"]
"""``train`` = a client's whole training split = ``fit`` + ``val``; ``test`` is for final evaluation only."""
TRAINING_PARTS: tuple[Part, ...] = ("fit", "val", "train")


@dataclass(frozen=True)
class Budget:
    """Compute budget of one federated run."""

    rounds: int
    local_steps: int
    batch_size: int


@dataclass
class ClientData:
    """One client's samples of one part, held in memory as aligned tensors."""

    inputs: Tensor
    targets: Tensor

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(
                f"inputs ({len(self.inputs)}) and targets ({len(self.targets)}) differ in length"
            )

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.inputs[indices], self.targets[indices]

    def slice(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        return self.inputs[start:stop], self.targets[start:stop]

    def subset(self, indices: Sequence[int] | np.ndarray | Tensor) -> ClientData:
        index = (
            indices if isinstance(indices, Tensor) else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        )
        return ClientData(self.inputs[index], self.targets[index])


@dataclass(frozen=True)
class LinearHead:
    """A model that is one ``nn.Linear`` with a fixed output function after it, and a task loss that is the
    mean over samples of a per-sample loss of the linear layer's output ``z`` (``Profile.linear_head``).

    Shapes: ``z`` is ``[clients, batch, out]``, ``targets`` the stacked targets ``[clients, batch, ...]``.
    """

    linear: nn.Linear
    sample_loss: Callable[[Tensor, Tensor], Tensor]
    """``(z, targets) -> [clients, batch]``: each sample's loss (the task loss is their mean)."""
    sample_grad: Callable[[Tensor, Tensor, Tensor], Tensor]
    """``(z, targets, scale) -> [clients, batch, out]``: d/dz of the sum over samples of ``scale``
    (``[clients, batch, 1]``) times each sample's loss; scale 1/n gives the gradient of the mean."""


@dataclass
class Evaluation:
    """A metric on each client's data and their average (FLamby averages over clients, unweighted)."""

    metric: str
    per_client: list[float]
    mean: float = field(init=False)

    def __post_init__(self) -> None:
        finite = [v for v in self.per_client if not math.isnan(v)]
        self.mean = float(np.mean(finite)) if finite else math.nan


@dataclass(frozen=True)
class VerdictSpec:
    """How a task's finalists are judged (the YAML's ``verdict:`` block): the practical margin a gain must
    exceed, and what sizes the finals — the measured spread of paired test differences between two
    recipes and the smallest true gain the finals must detect (80 % power), or a fixed seed count."""

    margin: float
    """Metric units, > 0: a gain must exceed it; on held-out data a finalist may lose at most it."""
    why: str
    """One line: why this margin (a difference that matters for the task, or tied to measured noise)."""
    paired_sd: float | None = None
    """Standard deviation of paired test differences (candidate − reference, same seeds), as measured."""
    sd_source: str = ""
    """Where ``paired_sd`` was measured (the command that reproduces it), or why it was not."""
    detect: float | None = None
    """The smallest true gain over a reference the finals should detect 80 % of the time."""
    final_seeds: int | None = None
    """Used when ``paired_sd`` is unknown: a fixed number of final seeds."""

    @classmethod
    def from_config(cls, block: Any, profile: str) -> VerdictSpec:
        where = f"afr/conf/profile/{profile}.yaml: verdict"
        fix = (
            "give `verdict: {margin: <metric units > 0>, why: <one line>, paired_sd: <measured sd>, "
            "sd_source: <how measured>, detect: <gain to detect>}` (or `final_seeds: N` instead of "
            "paired_sd and detect)"
        )
        if not isinstance(block, Mapping):
            raise ConfigError(f"profile {profile!r} declares no verdict margin", where=where, fix=fix)
        unknown = sorted(set(block) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown verdict key(s) {', '.join(unknown)}", where=where, fix=fix)
        try:
            spec = cls(
                margin=float(block["margin"]),
                why=" ".join(str(block["why"]).split()),
                paired_sd=None if block.get("paired_sd") is None else float(block["paired_sd"]),
                sd_source=" ".join(str(block.get("sd_source") or "").split()),
                detect=None if block.get("detect") is None else float(block["detect"]),
                final_seeds=None
                if block.get("final_seeds") is None
                else _whole(block["final_seeds"], "final_seeds"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"profile {profile!r}: malformed verdict block ({exc})", where=where, fix=fix
            ) from exc
        problems = []
        if not (math.isfinite(spec.margin) and spec.margin > 0):
            problems.append(f"margin must be a number > 0 (metric units), got {spec.margin}")
        if not spec.why:
            problems.append("why must say in one line why this margin")
        if (spec.paired_sd is None) != (spec.detect is None):
            problems.append("give paired_sd and detect together (or neither, with final_seeds)")
        if spec.paired_sd is not None and not (spec.paired_sd > 0 and spec.detect > spec.margin):  # type: ignore[operator]
            problems.append(f"paired_sd must be > 0 and detect > margin, got {spec.paired_sd}, {spec.detect}")
        if spec.paired_sd is None and (spec.final_seeds is None or spec.final_seeds < 2):
            problems.append("without paired_sd, final_seeds must be an integer >= 2")
        if problems:
            raise ConfigError(f"profile {profile!r}: " + "; ".join(problems), where=where, fix=fix)
        return spec


def _whole(value: Any, key: str) -> int:
    """An integer config value; whole floats (``15.0``) pass, ``2.5``, bools and strings do not."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    return int(value)


AUTOCAST_MODES = ("off", "bf16")


def resolve_autocast(spec: Any) -> str | None:
    """``autocast``: None/``off`` (full precision, the default) or ``bf16`` (local training's forward pass and
    loss under ``torch.autocast(dtype=bfloat16)`` on the profile's device; meant for the imaging profiles on
    a GPU; evaluation stays in full precision)."""
    text = "off" if spec is None or spec is False else str(spec).strip().lower()
    if text not in AUTOCAST_MODES:
        raise ValueError(f"autocast must be one of {', '.join(AUTOCAST_MODES)}, got {spec!r}")
    return None if text == "off" else text


def resolve_device(spec: Any) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given (checked)."""
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={spec!r} but this machine has no CUDA device",
            where="device=",
            fix="use device=auto (CUDA when available, else CPU) or device=cpu",
        )
    return device


class Profile(ABC):
    """A federated task: clients' data, model variants, loss, metric, budget, scalar space, seeds.

    Subclasses implement :meth:`load_splits`, :meth:`loss`, :meth:`metric`, register model builders
    in :attr:`model_variants` and declare their data's :attr:`source`; everything else (validation
    carving, evaluation, the declared scalar space, per-recipe defaults) is configured by the profile's
    YAML (``afr/conf/profile/<name>.yaml``, which names the class with ``_target_``).
    """

    name: ClassVar[str]
    metric_name: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    model_variants: ClassVar[dict[str, Callable[[Profile], nn.Module]]]
    source: ClassVar[DataSource] = DataSource()
    """Where the data comes from (the profile's ``fetch.SOURCE``); no files: generated data."""

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        self.cfg = dict(cfg)
        self.data_dir = Path(data_dir) if data_dir else None
        try:
            self.budget = Budget(*(_whole(cfg[key], key) for key in ("rounds", "local_steps", "batch_size")))
            self.val_fraction = float(cfg.get("val_fraction", 0.2))
            self.split_seed = int(cfg.get("split_seed", 0))
            seeds = cfg.get("seeds", {})
            self.search_seeds = [int(s) for s in seeds.get("search", [0])]
            self.final_seeds = [int(s) for s in seeds.get("final", [42, 43, 44, 45, 46])]
            self.contract = CommunicationContract.from_config(cfg.get("contract"))
            heldout = cfg.get("heldout_clients")
            if heldout is None:
                self.heldout_clients: tuple[int, ...] = ()
            elif isinstance(heldout, list | tuple):
                self.heldout_clients = tuple(sorted({_whole(k, "heldout_clients") for k in heldout}))
            else:
                self.heldout_clients = (_whole(heldout, "heldout_clients"),)
            self.eval_batch_size = _whole(
                cfg.get("eval_batch_size", type(self).eval_batch_size), "eval_batch_size"
            )
            self.device = resolve_device(cfg.get("device", "cpu"))
            self.autocast = resolve_autocast(cfg.get("autocast"))
            # The recipe a campaign's agents edit and its control tunes: a shipped name or a .py path.
            self.baseline = str(cfg.get("baseline") or DEFAULT_BASELINE)
            block = cfg.get("verdict")
            self._verdict = None if block is None else VerdictSpec.from_config(block, self.name)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"profile {self.name!r} config is malformed: {exc}",
                where=f"afr/conf/profile/{self.name}.yaml",
                fix="rounds, local_steps, batch_size must be integers; seeds.search/final lists of integers; "
                "heldout_clients an integer or a list of integers; device auto, cpu, cuda or cuda:N; "
                "autocast off or bf16",
            ) from exc
        if min(self.budget.rounds, self.budget.local_steps, self.budget.batch_size) < 1:
            raise ConfigError(
                f"profile {self.name!r}: rounds, local_steps and batch_size must be >= 1, got {self.budget}",
                where="profile config",
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(
                f"val_fraction must be in (0, 1), got {self.val_fraction}", where="profile config"
            )
        self._splits: tuple[list[ClientData], list[ClientData]] | None = None
        self._parts: dict[str, list[ClientData]] = {}
        self._test_forgotten = False
        self._heldout: list[ClientData] | None = None

    @property
    def verdict(self) -> VerdictSpec:
        """How this task's finalists are judged (the YAML's ``verdict:`` block); campaigns need one."""
        if self._verdict is None:
            return VerdictSpec.from_config(None, self.name)  # raises: says what to declare
        return self._verdict

    def for_campaign(self) -> Profile:
        """The task as a campaign runs it: the ``heldout.clients`` of the YAML (e.g. a FLamby center) set
        aside from the whole search and from the finals' training, kept for held-out evaluation only.

        Single runs use the profile as configured (FLamby's full federation); profiles whose config already
        sets ``heldout_clients`` (LEAF's held-out groups) are returned as they are.
        """
        spec = self.cfg.get("heldout") or {}
        clients = spec.get("clients")
        if spec.get("kind") != "heldout_clients" or clients is None or self.heldout_clients:
            return self
        return self.with_overrides(heldout_clients=clients)

    def with_overrides(self, **overrides: Any) -> Profile:
        """The same profile class and data folder with ``overrides`` merged over this config."""
        return type(self)({**self.cfg, **overrides}, self.data_dir)

    # --- data ------------------------------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        """This profile's data folder, ``<data_dir>/<name>`` (not checked; see :meth:`require_data`)."""
        return profile_dir(self.name, self.data_dir)

    def require_data(self) -> Path:
        """The data folder, once its files (or prepared layout) are there; ``DataError`` naming the
        ``afr data fetch`` command otherwise. Loaders call it before reading anything."""
        return require(self.name, self.source, self.data_dir)

    @abstractmethod
    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        """Each client's whole train split and test split, after the task's preprocessing."""

    @property
    @abstractmethod
    def client_names(self) -> list[str]:
        """Human-readable client names, in client-index order."""

    def grouping_rule(self) -> str:
        """How clients are formed from the published data, in one sentence (for docs/profiles.md)."""
        return "one client per center of the published federated split (natural silos)"

    @property
    def client_steps_per_run(self) -> int:
        """What one FL run may spend: rounds × training clients × local steps (the accountant's unit)."""
        return self.budget.rounds * self.num_clients * self.budget.local_steps

    @property
    def num_clients(self) -> int:
        """Clients that train (a held-out client does not count)."""
        return len(self.training_client_names)

    def stratify_labels(self, data: ClientData) -> np.ndarray | None:
        """Labels to stratify the validation carve-out on (None: plain random)."""
        return None

    def data(self, part: Part) -> list[ClientData]:
        """Per-client data of one part; ``val`` is carved from ``train`` with :attr:`split_seed`."""
        if part not in ("fit", "val", "train", "test"):
            raise ValueError(f"unknown data part {part!r}")
        if part == "test" and self._test_forgotten:
            raise RuntimeError("this process dropped the test split: test metrics are computed by the parent")
        if part not in self._parts:
            if self._splits is None:
                self._splits = self._set_aside_heldout(*self.load_splits())
            train, test = self._splits
            self._parts["train"], self._parts["test"] = train, test
            self._parts["fit"], self._parts["val"] = [], []
            for k, client in enumerate(train):
                fit_idx, val_idx = self._carve(client, k)
                self._parts["fit"].append(client.subset(fit_idx))
                self._parts["val"].append(client.subset(val_idx))
        return self._parts[part]

    def _set_aside_heldout(
        self, train: list[ClientData], test: list[ClientData]
    ) -> tuple[list[ClientData], list[ClientData]]:
        """Keep the ``heldout_clients`` clients (train + test rows) out of every part."""
        held = self.heldout_clients
        if not held:
            return train, test
        bad = [k for k in held if not 0 <= k < len(train)]
        if bad:
            raise ConfigError(
                f"heldout_clients={list(held)} but profile {self.name!r} has clients 0..{len(train) - 1}",
                where="profile.heldout_clients",
                fix=f"give client indices in 0..{len(train) - 1}",
            )
        if len(held) >= len(train):
            raise ConfigError(
                f"heldout_clients={list(held)} holds out every client of profile {self.name!r}",
                where="profile.heldout_clients",
                fix="leave at least one client to train",
            )
        self._heldout = [
            ClientData(
                torch.cat([train[k].inputs, test[k].inputs]), torch.cat([train[k].targets, test[k].targets])
            )
            for k in held
        ]
        return [d for i, d in enumerate(train) if i not in held], [
            d for i, d in enumerate(test) if i not in held
        ]

    def heldout_data(self) -> list[ClientData]:
        """Each held-out client's whole data (parent process only; never given to training)."""
        if not self.heldout_clients:
            raise ValueError(f"profile {self.name!r} holds no client out (set heldout_clients)")
        if self._test_forgotten:
            raise RuntimeError(
                "this process dropped the held-out data: held-out metrics are computed by the parent"
            )
        self.data("train")
        assert self._heldout is not None
        return list(self._heldout)

    @property
    def training_client_names(self) -> list[str]:
        """Names of the clients that train (all but the held-out one)."""
        return [n for i, n in enumerate(self.client_names) if i not in self.heldout_clients]

    @property
    def heldout_client_names(self) -> list[str]:
        """Names of the held-out clients (empty when none is held out)."""
        return [self.client_names[k] for k in self.heldout_clients]

    def final_seed_list(self, count: int) -> list[int]:
        """The first ``count`` final seeds: the YAML's ``seeds.final``, continued by +1 past its end."""
        seeds = list(self.final_seeds[:count])
        while len(seeds) < count:
            seeds.append(seeds[-1] + 1)
        if set(seeds) & set(self.search_seeds):
            raise ConfigError(
                f"profile {self.name!r}: final seeds {seeds} overlap the search seeds {self.search_seeds}",
                where=f"afr/conf/profile/{self.name}.yaml: seeds",
                fix="start seeds.final above every search seed",
            )
        return seeds

    def search_seed_list(self, count: int) -> list[int]:
        """The first ``count`` search seeds (seed racing's rungs): the YAML's ``seeds.search``, continued by
        +1 past its end."""
        seeds = list(self.search_seeds[:count])
        while len(seeds) < count:
            seeds.append(seeds[-1] + 1)
        return seeds

    def heldout_settings(self) -> dict[str, dict[str, Any]]:
        """Named profile-config overrides for held-out evaluation (from the YAML's ``heldout`` block).

        ``heldout_clients``: one setting with no overrides: the ``heldout_clients`` (LEAF user groups, or a
        FLamby center set aside by :meth:`for_campaign`) never train nor validate, in the search or the
        finals; the finals' own runs are evaluated on all their rows. ``leave_one_client_out``: one setting
        per client, trained without it, tested on all its rows; ``settings``: explicit overrides (e.g. other
        synthetic (α, β), a fresh data draw), trained and tested on the test split. Settings with overrides
        need runs of their own.
        """
        spec = self.cfg.get("heldout") or {}
        kind = spec.get("kind")
        if kind == "leave_one_client_out":
            return {f"without_{name}": {"heldout_clients": k} for k, name in enumerate(self.client_names)}
        if kind == "heldout_clients":
            if not self.heldout_clients:
                raise ConfigError(
                    f"profile {self.name!r}: heldout.kind heldout_clients needs heldout_clients",
                    where=f"afr/conf/profile/{self.name}.yaml",
                    fix="set heldout_clients (or heldout.clients, for campaigns) to the index or list of "
                    "indices of the held-out clients",
                )
            return {"heldout_clients": {}}
        if kind == "settings":
            return {str(k): dict(v) for k, v in (spec.get("settings") or {}).items()}
        if kind is None:
            return {}
        raise ConfigError(
            f"unknown held-out kind {kind!r}",
            where=f"afr/conf/profile/{self.name}.yaml: heldout.kind",
            fix="leave_one_client_out, heldout_clients or settings",
        )

    def forget_test(self) -> None:
        """Drop the test split from memory (training workers call this before running any recipe)."""
        self.data("train")
        self._heldout = None
        self._parts.pop("test", None)
        if self._splits is not None:
            self._splits = (self._splits[0], [])
        self._test_forgotten = True

    def _carve(self, client: ClientData, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(client)
        index = np.arange(n)
        labels = self.stratify_labels(client)
        n_val = max(1, math.ceil(self.val_fraction * n))
        if labels is not None:
            _, counts = np.unique(labels, return_counts=True)
            # Stratifying needs >= 2 of every class and at least one slot per class on both sides.
            if len(counts) < 2 or counts.min() < 2 or len(counts) > min(n_val, n - n_val):
                labels = None
        from sklearn.model_selection import train_test_split  # lazy: sklearn costs ~0.5 s to import

        fit_idx, val_idx = train_test_split(
            index, test_size=n_val, random_state=self.split_seed + k, shuffle=True, stratify=labels
        )
        return np.sort(fit_idx), np.sort(val_idx)

    # --- model, loss, metric ---------------------------------------------------------------------

    def build_model(self, variant: str = "default") -> nn.Module:
        if variant not in self.model_variants:
            raise ConfigError(
                f"profile {self.name!r} has no model variant {variant!r}",
                where="recipe.model_variant()",
                fix=f"choose one of {', '.join(sorted(self.model_variants))}",
            )
        return self.model_variants[variant](self)

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The task loss on one batch."""

    @abstractmethod
    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        """The task metric on one client's concatenated predictions (NaN when undefined)."""

    def batched_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The task loss of several clients' batches at once, optional: ``outputs`` and ``targets`` carry a
        leading client dimension; the result is one loss per client (shape ``[clients]``), each equal to
        :meth:`loss` on that client's batch up to float rounding.

        The engine's batched path uses it when a profile defines it (the engine checks it against
        :meth:`loss` on real data before a run), else it runs :meth:`loss` under ``torch.func.vmap``.
        """
        raise NotImplementedError

    def linear_head(self, model: nn.Module) -> LinearHead | None:
        """``model`` as a linear layer + a per-sample loss with its derivative, optional (``None``: not such a
        model, e.g. another variant). The engine's batched path then takes local steps of recipes whose
        local objective is FedAvg's or FedProx's in closed form, without autograd — for tiny models, where
        autograd's per-step cost is most of a step. The engine checks it against :meth:`loss` and autograd
        on real data before a run (and uses autograd when they differ).
        """
        return None

    eval_batch_size: ClassVar[int] = 4096
    """Default chunk size of :meth:`evaluate` (YAML ``eval_batch_size`` overrides it per profile)."""

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The training mini-batch as the model sees it (augmentation, dtype conversion); identity here.

        The engine calls it on every local step, with a generator seeded per (run seed, client).
        """
        return inputs, targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        """Evaluation inputs as the model sees them (e.g. normalisation, centre crop); identity here."""
        return inputs

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datasets: Sequence[ClientData]) -> Evaluation:
        """Metric of ``model`` on each client's data and their unweighted average."""
        was_training = model.training
        model.eval()
        device = next(iter(model.parameters()), torch.empty(0)).device
        scores = []
        for client in datasets:
            outs = [
                model(self.eval_inputs(client.inputs[i : i + self.eval_batch_size]).to(device)).cpu()
                for i in range(0, len(client), self.eval_batch_size)
            ]
            scores.append(float(self.metric(torch.cat(outs), client.targets)))
        model.train(was_training)
        return Evaluation(self.metric_name, scores)

    # --- recipes and their scalars -----------------------------------------------------------------

    def scalar_space(self, recipe_cls: type[Recipe] | RecipeSource) -> dict[str, Scalar]:
        """The recipe's declared scalars with this profile's ranges and defaults applied.

        ``recipe_cls`` is a recipe class or a :class:`~afr.recipe.RecipeSource` (a file read, not run).
        """
        space = recipe_cls.declared_scalars()
        ranges = self.cfg.get("search_space", {}) or {}
        defaults = (self.cfg.get("recipes", {}) or {}).get(recipe_cls.name, {}) or {}
        stray = sorted(set(defaults) - set(space))
        if stray:
            raise ConfigError(
                f"profile {self.name!r} sets {', '.join(stray)} for recipe {recipe_cls.name!r}, "
                "which declares no such scalar",
                where=f"afr/conf/profile/{self.name}.yaml: recipes.{recipe_cls.name}",
                fix=f"declared scalars: {', '.join(sorted(space))}",
            )
        out = {}
        for name, declared in space.items():
            changes = dict(ranges.get(name, {}) or {})
            if name in defaults:
                changes["default"] = float(defaults[name])
            try:
                out[name] = declared.with_range(**changes)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"bad search range for scalar {name!r}: {exc}",
                    where=f"afr/conf/profile/{self.name}.yaml: search_space.{name}",
                    fix="give low <= default <= high (and low > 0 when log: true)",
                ) from exc
        return out

    def make_recipe(self, recipe_cls: type[Recipe], overrides: Mapping[str, float] | None = None) -> Recipe:
        """Instantiate a recipe with this profile's defaults, then ``overrides``."""
        space = self.scalar_space(recipe_cls)
        values = {name: s.default for name, s in space.items()}
        unknown = sorted(set(overrides or {}) - set(space))
        if unknown:
            raise ConfigError(
                f"recipe {recipe_cls.name!r} declares no scalar {', '.join(unknown)}",
                where="scalars=",
                fix=f"declared scalars: {', '.join(sorted(space)) or 'none'}",
            )
        values.update(dict(overrides or {}))
        recipe = recipe_cls()
        checked = {}
        for name, value in values.items():
            try:
                checked[name] = space[name].check(value)
            except ValueError as exc:
                raise ConfigError(
                    str(exc), where=f"scalars.{name}", fix="pick a value inside the range"
                ) from exc
        recipe._scalars = checked
        return recipe

    def describe(self) -> dict[str, Any]:
        """A summary a person (or an agent) can read."""
        summary = {
            "name": self.name,
            "clients": self.training_client_names,
            "budget": vars(self.budget),
            "metric": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "model_variants": sorted(self.model_variants),
        }
        if self.heldout_clients:
            summary["heldout_clients"] = self.heldout_client_names
        return summary
