"""Shared machinery of the LEAF profiles: LEAF's JSON reader, the user -> client grouping rule and
the abstract :class:`LeafProfile`.

LEAF (Caldas et al., 2018) is cross-device: thousands of users, each with a few hundred samples at
most. A cross-silo profile merges users into ``K`` clients by a written, deterministic rule
(:class:`Grouping`), and keeps ``H`` further groups out of training entirely for held-out evaluation:

* ``rule: hash`` -- user ``u`` joins group ``int(sha256(u)[:8]) mod (K + H)``. A user's group depends
  on its id alone (not on which other users are present), so a bigger or smaller LEAF sample keeps
  every shared user in the same group; group sizes vary binomially.
* ``rule: attribute`` -- users sharing a natural attribute (Shakespeare's play, FEMNIST's 100-writer
  source file, ...) stay together. Attributes are sorted by total training samples (largest first,
  ties by name) and each is dealt to the group with the fewest samples so far (lowest index on ties):
  the greedy longest-processing-time rule, which balances group sizes as far as whole attributes allow.

Groups ``0..K-1`` train (clients ``g0..g{K-1}``); groups ``K..K+H-1`` are held out
(``heldout_0..``) via the base profile's ``heldout_clients``: their train and test rows are never
given to training and form the held-out evaluation (YAML ``heldout: {kind: heldout_clients}``).
Each group's users are concatenated (users sorted by id) into one ClientData per split; the
per-client validation split is carved from train by the base class, as for every profile.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ._base import ClientData, Profile

__all__ = [
    "LeafSplit",
    "read_leaf_split",
    "Grouping",
    "LeafProfile",
    "stable_hash",
    "default_model_name",
    "config_int",
    "cross_entropy",
    "accuracy",
]


# --- LEAF's JSON format --------------------------------------------------------------------------


@dataclass
class LeafSplit:
    """One LEAF split folder (``train/`` or ``test/``), all its files merged.

    ``data[user] = (x, y)``: the user's raw LEAF lists, or whatever ``transform`` returned for them;
    ``hierarchies[user]`` is LEAF's optional attribute (Shakespeare: the play); ``sources[user]``
    is the stem of the file the user came from (FEMNIST: its 100-writer chunk); ``num_samples[user]``
    is ``len(y)`` (not the file's declared count, which LEAF overstates for Shakespeare's test split).
    """

    users: list[str]
    data: dict[str, tuple[Any, Any]]
    hierarchies: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    num_samples: dict[str, int] = field(default_factory=dict)


def _natural_key(path: Path) -> list[Any]:
    """``all_data_2`` before ``all_data_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def leaf_files(folder: Path) -> list[Path]:
    """The ``*.json`` / ``*.json.gz`` files of one LEAF split folder, in natural order."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith((".json", ".json.gz"))]
    return sorted(files, key=_natural_key)


def _load_json(path: Path) -> Any:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return json.load(fh)
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cannot read LEAF file {path.name}: {exc}",
            where=str(path),
            fix="the file is truncated or not LEAF JSON: delete it and re-create the data "
            "(`afr data fetch <profile>`)",
        ) from exc


def read_leaf_split(
    folder: Path | str, *, transform: Callable[[list, list], tuple[Any, Any]] | None = None
) -> LeafSplit:
    """Read and validate every ``*.json`` / ``*.json.gz`` file of one LEAF split folder.

    Each file must hold ``users`` (ids), ``num_samples`` (one count per user) and ``user_data``
    (``{user: {"x": [...], "y": [...]}}`` with ``len(x) == len(y) <= num_samples``: LEAF's Shakespeare
    test files overstate ``num_samples`` by the 79 dropped overlapping windows), and may hold
    ``hierarchies`` (one string per user). Any defect, or a user present in two files, raises one
    ``DataError`` naming the file. ``transform(x, y)`` is applied to each user right after its
    checks (e.g. to tensors), so a large split never sits in memory as Python lists.
    """
    folder = Path(folder)
    files = leaf_files(folder)
    if not files:
        raise DataError(
            f"no LEAF *.json / *.json.gz files in {folder}",
            where=str(folder),
            fix="point data_dir at a folder with <profile>/train and <profile>/test "
            "(or run `afr data fetch <profile>`)",
        )
    split = LeafSplit(users=[], data={})
    for path in files:
        raw = _load_json(path)

        def bad(what: str, path: Path = path) -> DataError:
            return DataError(
                f"malformed LEAF file {path.name}: {what}",
                where=str(path),
                fix="LEAF files hold users, num_samples and user_data{user: {x, y}}; "
                "re-create the data (`afr data fetch <profile>`)",
            )

        if not isinstance(raw, dict):
            raise bad(f"top level is a {type(raw).__name__}, expected an object")
        missing = [k for k in ("users", "num_samples", "user_data") if k not in raw]
        if missing:
            raise bad(f"missing key(s) {', '.join(missing)}")
        users, counts, user_data = raw["users"], raw["num_samples"], raw["user_data"]
        if not isinstance(users, list) or not isinstance(counts, list) or not isinstance(user_data, dict):
            raise bad("users and num_samples must be lists, user_data an object")
        if len(users) != len(counts):
            raise bad(f"{len(users)} users but {len(counts)} num_samples")
        hierarchies = raw.get("hierarchies")
        if hierarchies is not None and (not isinstance(hierarchies, list) or len(hierarchies) != len(users)):
            raise bad("hierarchies must be a list with one entry per user")
        for i, (user, count) in enumerate(zip(users, counts, strict=True)):
            user = str(user)
            if user in split.data:
                raise bad(f"user {user!r} also appears in another file of {folder}")
            entry = user_data.get(user)
            if not isinstance(entry, dict) or "x" not in entry or "y" not in entry:
                raise bad(f"user_data has no x/y for user {user!r}")
            xs, ys = entry["x"], entry["y"]
            if not isinstance(xs, list) or not isinstance(ys, list):
                raise bad(f"x and y of user {user!r} must be lists")
            # LEAF's own Shakespeare split records a user's test count before dropping the 79 windows
            # that overlap training, so num_samples may exceed len(x) in files LEAF wrote; never less.
            if len(xs) != len(ys) or isinstance(count, bool) or not isinstance(count, int) or count < len(xs):
                raise bad(f"user {user!r}: num_samples {count!r}, {len(xs)} x, {len(ys)} y")
            if transform is not None:
                try:
                    xs, ys = transform(xs, ys)
                except DataError as exc:
                    raise DataError(
                        f"LEAF file {path.name}, user {user!r}: {exc.what}", where=str(path), fix=exc.fix
                    ) from exc
            split.users.append(user)
            split.data[user] = (xs, ys)
            split.num_samples[user] = len(entry["y"])
            split.sources[user] = _stem(path)
            if hierarchies is not None:
                split.hierarchies[user] = str(hierarchies[i])
        del raw, user_data
    return split


# --- the grouping rule ---------------------------------------------------------------------------


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process and Python version (sha256)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Grouping:
    """LEAF users -> ``clients + heldout_groups`` groups (see the module docstring for the rules)."""

    rule: Literal["hash", "attribute"]
    clients: int
    heldout_groups: int = 0

    def __post_init__(self) -> None:
        if self.rule not in ("hash", "attribute"):
            raise ConfigError(
                f"unknown grouping rule {self.rule!r}", where="profile.grouping.rule", fix="hash or attribute"
            )
        for key, value, low in (("clients", self.clients, 1), ("heldout_groups", self.heldout_groups, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"grouping.{key} must be an integer >= {low}, got {value!r}",
                    where=f"profile.grouping.{key}",
                )

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None, where: str = "profile.grouping") -> Grouping:
        """From the YAML ``grouping:`` block (``rule``, ``clients``, ``heldout_groups``)."""
        if not isinstance(block, Mapping):
            raise ConfigError(
                "the profile has no grouping block",
                where=where,
                fix="set grouping: {rule: hash|attribute, clients: K, heldout_groups: H}",
            )
        unknown = sorted(set(block) - {"rule", "clients", "heldout_groups", "why"})
        if unknown:
            raise ConfigError(
                f"unknown grouping key(s) {', '.join(unknown)}",
                where=where,
                fix="rule, clients, heldout_groups (and why: the justification docs/profiles.md prints)",
            )

        def whole(key: str, default: Any) -> Any:
            value = block.get(key, default)
            # Hydra overrides may hand over whole floats or digit strings.
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and value.strip().isdigit():
                return int(value)
            return value

        return cls(str(block.get("rule", "hash")), whole("clients", None), whole("heldout_groups", 0))

    @property
    def num_groups(self) -> int:
        """``G = clients + heldout_groups``."""
        return self.clients + self.heldout_groups

    @property
    def heldout_indices(self) -> list[int]:
        """The held-out groups: the last ``heldout_groups`` indices."""
        return list(range(self.clients, self.num_groups))

    def assign(
        self,
        users: Sequence[str],
        attributes: Sequence[str] | None = None,
        sizes: Sequence[int] | None = None,
    ) -> list[int]:
        """The group of each user (``attributes`` and ``sizes`` per user, needed by ``attribute``)."""
        g = self.num_groups
        if self.rule == "hash":
            return [stable_hash(str(u)) % g for u in users]
        if attributes is None or len(attributes) != len(users):
            raise ConfigError(
                "grouping rule 'attribute' needs one attribute per user", where="profile.grouping.rule"
            )
        sizes = [1] * len(users) if sizes is None else list(sizes)
        totals: dict[str, int] = {}
        for attribute, size in zip(attributes, sizes, strict=True):
            totals[attribute] = totals.get(attribute, 0) + int(size)
        if len(totals) < g:
            raise ConfigError(
                f"grouping rule 'attribute' needs at least {g} distinct attributes for "
                f"{self.clients} clients + {self.heldout_groups} held-out groups, the data has {len(totals)}",
                where="profile.grouping",
                fix=f"lower grouping.clients / grouping.heldout_groups (to <= {len(totals)} in total) "
                "or use rule: hash",
            )
        load = [0] * g
        group_of: dict[str, int] = {}
        for attribute in sorted(totals, key=lambda a: (-totals[a], a)):
            target = min(range(g), key=lambda k: (load[k], k))
            group_of[attribute] = target
            load[target] += totals[attribute]
        return [group_of[a] for a in attributes]


def config_int(cfg: Mapping[str, Any], key: str, default: int, low: int = 1) -> int:
    """An integer profile setting >= ``low`` (bools and floats refused with one ``ConfigError``)."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}", where=f"profile.{key}")
    return value


def default_model_name(cfg: Mapping[str, Any], choices: Sequence[str], profile: str) -> str:
    """The YAML's ``default_model`` (the variant ``default`` builds), checked against ``choices``."""
    name = str(cfg.get("default_model", choices[0]))
    if name not in choices:
        raise ConfigError(
            f"default_model must be one of {', '.join(choices)}, got {name!r}",
            where=f"afr/conf/profile/{profile}.yaml: default_model",
        )
    return name


# --- the profile ---------------------------------------------------------------------------------


class LeafProfile(Profile):
    """A LEAF dataset as a cross-silo profile: users grouped into clients, some groups held out.

    Subclasses set ``name``, ``metric_name``, ``model_variants``, ``source`` and implement
    :meth:`encode`, :meth:`loss` and :meth:`metric` (most delegate to :func:`cross_entropy` and
    :func:`accuracy`); they may override :meth:`user_attributes` (the attribute of the ``attribute`` rule).
    YAML: ``grouping: {rule, clients, heldout_groups}``, optional ``max_samples_per_user`` (a cap
    for CPU presets: evenly spaced samples of each user, train and test alike).
    """

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        where = f"afr/conf/profile/{self.name}.yaml: grouping"
        self.grouping = Grouping.from_config(cfg.get("grouping"), where)
        config = dict(cfg)
        held = self.grouping.heldout_indices
        given = config.get("heldout_clients")
        if held:
            given_list = given if isinstance(given, list | tuple) else [given]
            if given is not None and sorted(str(k) for k in given_list) != sorted(str(k) for k in held):
                raise ConfigError(
                    f"heldout_clients={given!r} conflicts with grouping.heldout_groups="
                    f"{self.grouping.heldout_groups} (held-out groups {held})",
                    where=f"afr/conf/profile/{self.name}.yaml",
                    fix="leave heldout_clients unset: a LEAF profile holds out its last heldout_groups "
                    "groups",
                )
            config["heldout_clients"] = held
        cap = config.get("max_samples_per_user")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 2):
            raise ConfigError(
                f"max_samples_per_user must be an integer >= 2 or null, got {cap!r}",
                where="profile.max_samples_per_user",
            )
        self.max_samples_per_user: int | None = cap
        super().__init__(config, data_dir)
        self._groups: list[dict[str, Any]] | None = None
        self._user_sizes: list[list[int]] | None = None  # per group, each user's train count before caps

    # --- what subclasses provide -----------------------------------------------------------------

    @abstractmethod
    def encode(self, xs: list, ys: list) -> ClientData:
        """Raw LEAF x / y lists (one user's, or several users' concatenated) -> tensors."""

    def user_attributes(self, train: LeafSplit) -> dict[str, str]:
        """The natural attribute of each user for ``rule: attribute`` (LEAF hierarchies, else source file)."""
        return {u: train.hierarchies.get(u, train.sources[u]) for u in train.users}

    #: What the ``attribute`` rule groups by, in words (for :meth:`grouping_rule`).
    attribute_name: ClassVar[str] = "a natural attribute (LEAF's hierarchies, else the source file)"

    # --- names and grouping ----------------------------------------------------------------------

    def grouping_rule(self) -> str:
        g = self.grouping
        if g.rule == "hash":
            how = f"LEAF user u joins group sha256(u) mod {g.num_groups}"
        else:
            how = (
                f"users sharing {self.attribute_name} stay together; attributes are dealt largest-first "
                f"to the group with the fewest training samples ({g.num_groups} groups)"
            )
        held = f"; the last {g.heldout_groups} group(s) are held out of training" if g.heldout_groups else ""
        cap = self.max_samples_per_user
        capped = f"; at most {cap} evenly spaced samples per user and split" if cap is not None else ""
        return f"{how}; groups 0..{g.clients - 1} train{held}{capped}"

    @property
    def client_names(self) -> list[str]:
        training = [f"g{k}" for k in range(self.grouping.clients)]
        return training + [f"heldout_{h}" for h in range(self.grouping.heldout_groups)]

    def _kept(self, n: int) -> np.ndarray:
        """Which of a user's ``n`` samples ``max_samples_per_user`` keeps (evenly spaced, in order)."""
        cap = self.max_samples_per_user
        if cap is None or n <= cap:
            return np.arange(n)
        return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))

    def _cap(self, xs: list, ys: list) -> tuple[list, list]:
        if self.max_samples_per_user is None or len(ys) <= self.max_samples_per_user:
            return xs, ys
        keep = self._kept(len(ys))
        return [xs[i] for i in keep], [ys[i] for i in keep]

    #: Sliding-window datasets set the window length (Shakespeare: 80). Validation is then carved as
    #: the tail of each user's windows, and training windows overlapping it are left out of ``fit``
    #: (as LEAF's own train/test split does): a random carve would put near-copies of every
    #: validation window (shifted by one character) into ``fit`` and overstate validation accuracy.
    sequence_overlap: ClassVar[int | None] = None

    def _carve(self, client: ClientData, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.sequence_overlap is None or self._user_sizes is None:
            return super()._carve(client, k)
        group = [g for g in range(self.grouping.num_groups) if g not in self.heldout_clients][k]
        fit, val, start = [], [], 0
        for n in self._user_sizes[group]:
            original = self._kept(n)  # each kept sample's index among the user's windows
            m = len(original)
            n_val = math.ceil(self.val_fraction * m) if m >= 2 else 0
            if n_val:
                first_val = original[m - n_val]
                # a window shares at most the boundary character with the first validation window
                fit_mask = original[: m - n_val] <= first_val - (self.sequence_overlap - 1)
                fit.append(start + np.flatnonzero(fit_mask))
                val.append(start + np.arange(m - n_val, m))
            else:
                fit.append(start + np.arange(m))
            start += m
        return np.concatenate(fit), np.concatenate(val) if val else np.arange(0)

    def _encode_user(self, xs: list, ys: list) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.encode(*self._cap(xs, ys))
        return data.inputs, data.targets

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        folder = self.require_data()
        train = read_leaf_split(folder / "train", transform=self._encode_user)
        test = read_leaf_split(folder / "test", transform=self._encode_user)
        if set(train.users) != set(test.users):
            only = sorted(set(train.users) ^ set(test.users))
            raise DataError(
                f"LEAF train and test folders hold different users (e.g. {', '.join(only[:3])})",
                where=str(folder),
                fix="use a train/ and test/ pair written by the same LEAF split (-t sample)",
            )
        users = sorted(train.users)
        attributes = self.user_attributes(train)
        groups = self.grouping.assign(
            users, [attributes[u] for u in users], [len(train.data[u][1]) for u in users]
        )
        members: list[list[str]] = [[] for _ in range(self.grouping.num_groups)]
        for user, g in zip(users, groups, strict=True):
            members[g].append(user)
        empty = [self.client_names[g] for g, m in enumerate(members) if not m]
        if empty:
            raise ConfigError(
                f"grouping leaves {', '.join(empty)} without users ({len(users)} users, "
                f"{self.grouping.num_groups} groups, rule {self.grouping.rule})",
                where=f"afr/conf/profile/{self.name}.yaml: grouping",
                fix="lower grouping.clients / grouping.heldout_groups",
            )

        def merge(split: LeafSplit, names: list[str]) -> ClientData:
            return ClientData(
                torch.cat([split.data[u][0] for u in names]), torch.cat([split.data[u][1] for u in names])
            )

        self._user_sizes = [[train.num_samples[u] for u in m] for m in members]
        train_parts = [merge(train, m) for m in members]
        test_parts = [merge(test, m) for m in members]
        self._groups = [
            {
                "client": self.client_names[g],
                "heldout": g >= self.grouping.clients,
                "users": len(m),
                "train_samples": len(train_parts[g]),
                "test_samples": len(test_parts[g]),
                "attributes": sorted({attributes[u] for u in m}),
                "user_ids": m,
            }
            for g, m in enumerate(members)
        ]
        return train_parts, test_parts

    def grouping_table(self) -> list[dict[str, Any]]:
        """Per group: client name, held out or not, users, train / test samples, attributes, user ids."""
        if self._groups is None:
            self.load_splits()
        assert self._groups is not None
        return [dict(row) for row in self._groups]

    def describe(self) -> dict[str, Any]:
        summary = super().describe()
        summary["grouping"] = {
            "rule": self.grouping.rule,
            "clients": self.grouping.clients,
            "heldout_groups": self.grouping.heldout_groups,
        }
        if self.max_samples_per_user is not None:
            summary["max_samples_per_user"] = self.max_samples_per_user
        return summary

    def stratify_labels(self, data: ClientData) -> np.ndarray | None:
        return data.targets.numpy() if data.targets.ndim == 1 else None


# --- LEAF's classification loss and metric (every LEAF reference classifier outputs logits) ------------


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits."""
    return torch.nn.functional.cross_entropy(outputs, targets)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of samples whose arg-max logit is the label (NaN without samples)."""
    if len(targets) == 0:
        return math.nan
    return float((outputs.argmax(dim=1) == targets).float().mean())
