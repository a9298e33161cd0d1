"""What the Flower server and clients share: the exported task (profile, recipe, seed) and tensor transport.

An export folder holds ``export.json`` (the profile's config, the candidate's class and scalars) and
``recipe.py`` (the candidate's source). :func:`load_task` rebuilds from them exactly what AFR's engine ran:
the profile with the campaign's config, and the recipe through ``profile.make_recipe`` (the profile's scalar
defaults, then the candidate's own values). The recipe file runs in this process, unsandboxed: export only
candidates whose code you have read.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from afr.profiles import Profile, make_profile
from afr.recipe import Params, Recipe, find_recipe_class

__all__ = [
    "EXPORT_FILE",
    "RECIPE_FILE",
    "Task",
    "load_task",
    "client_round_seed",
    "to_arrays",
    "to_tensors",
    "pack",
    "unpack",
]

EXPORT_FILE = "export.json"
RECIPE_FILE = "recipe.py"
_RECIPE_MODULE = "afr_exported_recipe"


@dataclass
class Task:
    """One exported candidate on its profile: everything both sides need to build the same run."""

    folder: Path
    spec: dict[str, Any]
    profile: Profile
    recipe: Recipe
    stage: str
    """``final`` trains on each client's whole train split, ``search`` on train minus validation (as AFR)."""

    @property
    def train_part(self) -> str:
        return "fit" if self.stage == "search" else "train"

    @property
    def num_clients(self) -> int:
        return len(self.profile.data(self.train_part))  # type: ignore[arg-type]

    def initial_model(self, seed: int) -> torch.nn.Module:
        """The model AFR's engine starts from for ``seed``: the global RNG seeded, then the variant built."""
        torch.manual_seed(seed)
        return self.profile.build_model(self.recipe.model_variant())


def load_task(folder: str | Path, *, data_dir: str | Path | None = None, stage: str | None = None) -> Task:
    """The task of an export folder (``stage`` overrides the exported one: ``final`` or ``search``)."""
    folder = Path(folder).resolve()
    spec = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
    stage = stage or spec.get("stage", "final")
    if stage not in ("final", "search"):
        raise ValueError(f"stage must be 'final' or 'search', got {stage!r}")
    profile = make_profile(spec["profile"], spec["profile_cfg"], data_dir=data_dir)
    recipe = profile.make_recipe(_recipe_class(folder / RECIPE_FILE, spec.get("class_name")), spec["scalars"])
    return Task(folder, spec, profile, recipe, stage)


def _recipe_class(path: Path, class_name: str | None) -> type[Recipe]:
    """The recipe class of ``recipe.py`` (executed here, as a module of its own)."""
    module = sys.modules.get(_RECIPE_MODULE)
    if module is None or getattr(module, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(_RECIPE_MODULE, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_RECIPE_MODULE] = module  # dataclasses and pickling look classes' modules up here
        spec.loader.exec_module(module)
    found = (
        getattr(module, class_name, None) if class_name else find_recipe_class(vars(module), _RECIPE_MODULE)
    )
    if not (isinstance(found, type) and issubclass(found, Recipe)):
        raise ValueError(
            f"{path} defines no Recipe subclass" + (f" named {class_name!r}" if class_name else "")
        )
    return found


def client_round_seed(seed: int, round_idx: int, client: int) -> int:
    """The global-RNG seed of one client-round, as AFR's engine sets it (``afr/engine/_loop.py``)."""
    return (seed * 1_000_003 + round_idx * 7_919 + client * 104_729 + 1) % (2**63 - 1)


def to_arrays(tensors: Params, names: list[str]) -> list[np.ndarray]:
    """``tensors`` in the order of ``names`` as NumPy arrays (Flower's NDArrays); no copy on the CPU."""
    return [tensors[name].detach().cpu().numpy() for name in names]


def to_tensors(arrays: list[np.ndarray], names: list[str]) -> Params:
    """Flower's NDArrays back to named tensors (copies: NumPy buffers from the wire may be read-only)."""
    if len(arrays) != len(names):
        raise ValueError(f"expected {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
    return {name: torch.from_numpy(np.array(a, copy=True)) for name, a in zip(names, arrays, strict=True)}


def pack(obj: Any) -> bytes:
    """Any picklable state (tensors, dicts) as bytes, for Flower's ConfigRecord and fit metrics."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def unpack(blob: bytes) -> Any:
    """The inverse of :func:`pack` (the state is this export's own: not untrusted input)."""
    return torch.load(io.BytesIO(blob), weights_only=False)


def tensor_nbytes(tensors: dict[str, Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())
