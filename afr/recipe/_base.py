"""The recipe interface: the hooks a federated-learning recipe may override.

A recipe is a class deriving from :class:`Recipe` (in practice from the baseline
:class:`~afr.recipe.FedAvg`). The engine calls its hooks; the recipe never sees the
engine, the data loaders, the test split or the budget accountant. Scalars a control
arm may tune are declared on the class with :func:`~afr.recipe.scalar`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._scalar import Scalar

__all__ = ["Recipe", "ClientUpdate", "LocalContext", "HOOKS"]

Params = dict[str, Tensor]

HOOKS: tuple[str, ...] = (
    "model_variant",
    "select_clients",
    "broadcast",
    "local_steps",
    "client_lr",
    "local_objective",
    "client_extras",
    "aggregate",
)
"""The recipe hooks, in the order the engine calls them in a round (model_variant once per run)."""


@dataclass
class ClientUpdate:
    """What one client sends back after local training in one round."""

    client: int
    delta: Params
    """Local parameters minus the global parameters the client started from."""
    num_samples: int
    """Size of the client's training set (FedAvg's weight n_k)."""
    num_steps: int
    """Local optimisation steps actually taken this round."""
    extras: Params = field(default_factory=dict)
    """Optional tensors the communication contract allows beside ``delta``."""


@dataclass
class LocalContext:
    """Read-only facts a local objective may use during one client's round."""

    round_idx: int
    client: int
    global_params: Params
    """The server parameters the client received at the start of this round: the client's own copy,
    read-only (the engine fails the run if a hook changed it)."""
    client_state: dict[str, Any]
    """This client's private memory, kept across rounds (for control variates and the like)."""
    num_samples: int
    step: int = 0
    """Index of the current local step (set by the engine before each step)."""
    lr: float = 0.0
    """The client's learning rate this round."""
    num_steps: int = 0
    """Local steps the client takes this round."""
    server_extras: Params = field(default_factory=dict)
    """Extra tensors the server broadcast this round (see :meth:`Recipe.broadcast`)."""


class Recipe:
    """Base of every recipe: hook signatures, scalar declaration and bookkeeping.

    Hooks, in the order the engine calls them each round:

    * :meth:`select_clients` — which clients take part;
    * :meth:`broadcast` — extra tensors sent down with the global parameters (default: none);
    * :meth:`local_steps` and :meth:`client_lr` — each client's schedule (steps are capped by the budget);
    * :meth:`local_objective` — the loss a client minimises, given the task loss;
    * :meth:`client_extras` — extra tensors a client uploads beside its delta (default: none);
    * :meth:`aggregate` — how the server turns client updates into new global parameters.

    Extras are keyed ``"<kind>.<parameter name>"`` and must fit the profile's communication
    contract (declared kinds, parameter shapes, a byte cap); the engine checks every payload.

    :meth:`model_variant` picks one of the profile's registered model variants once per run.
    """

    name: ClassVar[str] = "recipe"

    def __init__(self, **values: float) -> None:
        declared = self.declared_scalars()
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise ValueError(
                f"recipe {self.name!r} declares no scalar {', '.join(map(repr, unknown))}; "
                f"declared: {', '.join(sorted(declared)) or 'none'}"
            )
        self._scalars = {name: declared[name].check(v) for name, v in values.items()}

    @classmethod
    def declared_scalars(cls) -> dict[str, Scalar]:
        """Every scalar declared on this class or its bases, nearest declaration first."""
        found: dict[str, Scalar] = {}
        for klass in cls.__mro__:
            for key, value in vars(klass).items():
                if isinstance(value, Scalar) and key not in found:
                    found[key] = value
        return dict(sorted(found.items()))

    def scalar_values(self) -> dict[str, float]:
        """Current value of every declared scalar."""
        return {name: getattr(self, name) for name in self.declared_scalars()}

    # --- hooks -----------------------------------------------------------------------------------

    def model_variant(self) -> str:
        """Name of the profile's model variant to train."""
        raise NotImplementedError

    def select_clients(self, round_idx: int, num_clients: int, rng: torch.Generator) -> list[int]:
        """Indices of the clients that train in round ``round_idx``."""
        raise NotImplementedError

    def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:
        """Local steps for ``client`` this round; the engine refuses more than ``max_steps``."""
        raise NotImplementedError

    def client_lr(self, round_idx: int, client: int) -> float:
        """Learning rate of the client's SGD this round."""
        raise NotImplementedError

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        """The scalar loss the client minimises at one step, given the profile's task loss.

        The engine passes ``model`` as a read-only view: ``parameters``, ``named_parameters``, ``buffers``,
        ``named_buffers``, ``state_dict`` and submodules by attribute or index. Only the engine's SGD step
        may change the parameters; a hook that changes them (in place, or by dtype/device conversions)
        fails the run.
        """
        raise NotImplementedError

    def broadcast(self, round_idx: int, server_state: dict[str, Any]) -> Params:
        """Extra tensors every selected client receives this round beside the global parameters."""
        return {}

    def client_extras(self, delta: Params, ctx: LocalContext) -> Params:
        """Extra tensors the client uploads after local training, beside ``delta``."""
        return {}

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        """New global parameters from this round's client updates.

        ``server_state`` is the server's private memory, kept across rounds (momentum buffers…).
        """
        raise NotImplementedError
