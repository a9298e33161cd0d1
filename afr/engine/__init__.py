"""Federated engine: a custom, seeded, deterministic loop over client steps (``ClientModule.training_step``).

:class:`RunResult` is importable without the training stack; the rest (torch) loads on first use,
so that processes which only read results start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._result import STATUSES, RunResult, Status

if TYPE_CHECKING:
    from ._loop import Stage, run_federation
    from ._module import ClientModule
    from ._sampler import BatchStream, client_generator

__all__ = [
    "run_federation",
    "RunResult",
    "Status",
    "STATUSES",
    "Stage",
    "ClientModule",
    "BatchStream",
    "client_generator",
]

_LAZY = {
    "run_federation": "._loop",
    "Stage": "._loop",
    "ClientModule": "._module",
    "BatchStream": "._sampler",
    "client_generator": "._sampler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
