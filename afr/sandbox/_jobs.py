"""What the parent asks the sandbox to run (:class:`RunJob`) and what it gets back (:class:`RunOutcome`)."""

from __future__ import annotations

import json
import math
import pickle
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import Tensor

    from ..engine import RunResult

__all__ = ["RunJob", "RunOutcome", "Status", "STATUSES", "FRAME", "REQUEST", "encode_frame", "encode_request"]

Status = Literal["ok", "failed", "timeout", "memory", "crashed"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "timeout", "memory", "crashed")


@dataclass(frozen=True)
class RunJob:
    """One federated training run of one recipe with one seed, to execute in a sandboxed child.

    Give exactly one of ``recipe_source`` (the full text of a recipe ``.py`` file, already checked
    by the static validator) or ``recipe_name`` (a built-in recipe, see ``afr.recipe.RECIPES``).
    ``memory_mb`` is the address space the child may add on top of the warm zygote it is forked
    from (the zygote's torch/numpy mappings are shared copy-on-write and are not charged).
    """

    job_id: str
    profile: str
    profile_cfg: dict[str, Any]
    data_dir: str | None = None
    recipe_source: str | None = None
    recipe_name: str | None = None
    class_name: str | None = None
    """Which class of ``recipe_source`` to run; default: the last Recipe subclass the file defines."""
    scalars: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    stage: Literal["search", "final"] = "search"
    timeout_s: float = 600.0
    memory_mb: int = 4096
    import_roots: tuple[str, ...] = ()
    """``sys.path`` entries the zygote adds before loading the profile (a profile package outside afr);
    the child may read them."""

    def __post_init__(self) -> None:
        if (self.recipe_source is None) == (self.recipe_name is None):
            raise ValueError("give exactly one of recipe_source and recipe_name")
        if self.stage not in ("search", "final"):
            raise ValueError(f"stage must be 'search' or 'final', got {self.stage!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {self.timeout_s!r}")
        if isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int) or self.memory_mb < 1:
            raise ValueError(f"memory_mb must be a positive integer, got {self.memory_mb!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if isinstance(self.import_roots, str) or not all(isinstance(r, str) for r in self.import_roots):
            raise ValueError(f"import_roots must be a tuple of paths, got {self.import_roots!r}")
        object.__setattr__(self, "import_roots", tuple(self.import_roots))


@dataclass
class RunOutcome:
    """The result of a :class:`RunJob`: the trained weights and curve when ``status == "ok"``.

    ``seconds`` is the training time measured inside the child; ``wall_s`` the time from
    :meth:`SandboxPool.submit` to the result as seen by the parent (queueing and fork included).
    """

    job_id: str
    status: Status
    message: str = ""
    model_variant: str = ""
    state_dict: dict[str, Tensor] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    steps_per_client: list[int] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: float = 0.0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def final_val(self) -> float:
        return self.curve[-1].get("val", math.nan) if self.curve else math.nan

    def to_run_result(self) -> RunResult:
        """The engine's :class:`~afr.engine.RunResult` (for ``build_model`` and test evaluation)."""
        from ..engine import RunResult

        if not self.ok:
            raise ValueError(f"job {self.job_id!r} did not finish ({self.status}): {self.message}")
        return RunResult(
            self.model_variant,
            self.state_dict,
            curve=self.curve,
            steps_per_client=self.steps_per_client,
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            seconds=self.seconds,
        )


# --- wire format between the pool and the zygote (kept here so that the pool need not import the zygote) ---

FRAME = struct.Struct(">IQ")
"""zygote -> parent: JSON header length, payload length; then the header, then the payload bytes."""
REQUEST = struct.Struct(">Q")
"""parent -> zygote: pickle length; then the pickle (this direction is trusted)."""


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One zygote -> parent frame."""
    head = json.dumps(header).encode()
    return FRAME.pack(len(head), len(payload)) + head + payload


def encode_request(message: Any) -> bytes:
    """One parent -> zygote frame."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return REQUEST.pack(len(body)) + body
