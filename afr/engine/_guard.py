"""Run-time guard: the model may only run forward inside the engine's own training step or evaluation.

A recipe hook that calls the model (or its submodules) spends compute the budget does not grant; the
guard refuses it with a :class:`TrainingFailure` at the first such call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

from ..errors import TrainingFailure

__all__ = ["ForwardGuard"]


class ForwardGuard:
    """Refuses forward passes of ``model``'s modules outside :meth:`allow` blocks (per thread)."""

    def __init__(self, model: nn.Module) -> None:
        self._ids = {id(m) for m in model.modules()}
        self._local = threading.local()
        self._handle: Any = None

    def __enter__(self) -> ForwardGuard:
        self._handle = register_module_forward_pre_hook(self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @contextmanager
    def allow(self) -> Iterator[None]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def _check(self, module: nn.Module, _inputs: Any) -> None:
        if id(module) in self._ids and not getattr(self._local, "depth", 0):
            raise TrainingFailure(
                f"the recipe ran the model ({type(module).__name__}) outside the engine's training step: "
                "the budget allows exactly one forward pass per local step"
            )
