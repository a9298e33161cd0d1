"""What the parent asks the sandbox to run (:class:`RunJob`); results come back as RunResult (afr.engine)."""

from __future__ import annotations

import json
import math
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RunJob", "FRAME", "REQUEST", "encode_frame", "encode_request"]


@dataclass(frozen=True)
class RunJob:
    """One federated training run of one recipe with one seed, to execute in a sandboxed child.

    Give exactly one of ``recipe_source`` (the full text of a recipe ``.py`` file, already checked
    by the static validator) or ``recipe_name`` (a built-in recipe, see ``afr.recipe.RECIPES``).
    ``memory_mb`` is the address space the child may add on top of the warm zygote it is forked
    from (the zygote's torch/numpy mappings are shared copy-on-write and are not charged).
    ``timeout_s`` is the CPU time the run may use (status ``timeout`` beyond it); a run that sleeps or
    blocks is killed at a wall-clock backstop, ``3 * timeout_s + 30`` s. CPU time does not depend on the
    machine's load, so a run ends the same way on a busy machine as on an idle one.
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
