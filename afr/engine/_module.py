"""A client's local training step, in LightningModule's shape (``training_step``) but a plain ``nn.Module``.

The engine drives :meth:`ClientModule.training_step` from its own loop, with its own SGD step (see the
README's design notes for why not ``lightning.Trainer``). It never used anything of ``LightningModule`` but
the method's name, and importing lightning cost every sandbox process ~4 s CPU and ~185 MB (it pulls in
``torch._dynamo``), so the training path does not import it. ``benchmarks/engine_speed.py`` mixes
``lightning.LightningModule`` back in to run the same module under a Trainer and under Fabric.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ..recipe import LocalContext, Recipe
from ._integrity import ParamSeal

__all__ = ["ClientModule"]


class ClientModule(nn.Module):
    """Task model + task loss + the recipe's local objective for one client-round."""

    def __init__(
        self, model: nn.Module, task_loss: Callable[[Tensor, Tensor], Tensor], recipe: Recipe
    ) -> None:
        super().__init__()
        self.model = model
        self.task_loss = task_loss
        self.recipe = recipe
        self.ctx: LocalContext | None = None
        self.forward_window: Callable[[], AbstractContextManager[Any]] = nullcontext
        self.seal: ParamSeal | None = None
        """Set by the engine: sealed after the forward pass, verified after ``local_objective``."""
        self.model_view: Any = None
        """What ``local_objective`` gets if set (the engine: a read-only ``ModelView``), else the model."""
        self.precision: Callable[[], AbstractContextManager[Any]] = nullcontext
        """Set by the engine: ``torch.autocast`` around the forward pass and task loss (``autocast=bf16``)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        with self.precision():
            with self.forward_window():
                outputs = self.model(inputs)
            task_loss = self.task_loss(outputs, targets)
        if task_loss.dtype in (torch.bfloat16, torch.float16):
            task_loss = task_loss.float()  # the recipe's objective (and the finite-loss check) in fp32
        assert self.ctx is not None, "the engine sets the local context before training"
        self.ctx.step = batch_idx
        seal, model = self.seal, self.model if self.model_view is None else self.model_view
        if seal is None:
            return self.recipe.local_objective(task_loss, model, self.ctx)
        if seal.has_buffers:
            seal.refresh_buffers()  # the forward pass may update running statistics
        if seal.protected:
            seal.label("local_objective")
        loss = self.recipe.local_objective(task_loss, model, self.ctx)
        seal.verify("local_objective")
        return loss
