"""What one federated run hands back — the one run-result type, from the engine or from the sandbox.

Kept free of torch and lightning imports, so that the parent process can read results (through the sandbox)
without loading the training stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ..profiles import Profile

__all__ = ["RunResult", "Status", "STATUSES"]

Status = Literal["ok", "failed", "timeout", "memory", "crashed"]
"""``ok``: trained; ``failed``: the recipe broke a rule or raised; ``timeout``/``memory``: a limit killed it;
``crashed``: it died otherwise (the sandbox's worker died, a malformed result)."""
STATUSES: tuple[Status, ...] = ("ok", "failed", "timeout", "memory", "crashed")


@dataclass
class RunResult:
    """Final weights, validation curve and what the run spent; for a run that did not finish, its status.

    The engine returns ``status="ok"`` results (a failure raises); the sandbox returns every status, with
    ``message`` saying why and ``wall_s`` the time from the run's start in a worker to its result as the
    parent saw it (the local sandbox counts from the fork: a wait behind busy workers is not the run's time).
    """

    model_variant: str = ""
    state_dict: dict[str, Tensor] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    """One entry per round: round, val (mean over clients), val_per_client, train_loss."""
    steps_per_client: list[int] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: float = 0.0
    """Training time, measured where the run trained."""
    status: Status = "ok"
    message: str = ""
    wall_s: float = 0.0
    """Sandboxed runs: from submission to result, as seen by the parent (queueing and fork included)."""
    engine_path: str = ""
    """Which training path ran: ``"batched"`` (the selected clients of a round as one computation) or
    ``"per-client"`` (one after another); empty for results that did not come from the engine."""
    engine_note: str = ""
    """Why the per-client path ran (not asked for, or what the batched one cannot do), or, for a batched run,
    how the clients were batched (``"stacked"``: linear layers as bmm; ``"vmap"``: torch.func.vmap)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def steps(self) -> int:
        return sum(self.steps_per_client)

    @property
    def final_val(self) -> float:
        return self.curve[-1].get("val", math.nan) if self.curve else math.nan

    def build_model(self, profile: Profile) -> nn.Module:
        """The trained model (on the profile's device); only for ``ok`` results."""
        if not self.ok:
            raise ValueError(f"the run did not finish ({self.status}): {self.message}")
        model = profile.build_model(self.model_variant)
        model.load_state_dict(self.state_dict)
        return model.to(profile.device)
