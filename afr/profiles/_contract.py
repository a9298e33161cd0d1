"""The communication contract: what may travel between server and clients in one round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor

from ..errors import TrainingFailure

__all__ = ["CommunicationContract", "ContractViolation"]


class ContractViolation(TrainingFailure):
    """A payload that the profile's communication contract does not allow."""


@dataclass(frozen=True)
class CommunicationContract:
    """Uploads are the parameter delta (engine-computed) plus declared extras; downloads likewise.

    Extras are keyed ``"<kind>.<parameter name>"``; each declared kind may carry tensors shaped
    like the model's parameters (float32 / float64), up to ``cap × parameter bytes`` per payload.
    """

    upload_extras: Mapping[str, float] = field(default_factory=lambda: {"control": 1.0})
    download_extras: Mapping[str, float] = field(default_factory=lambda: {"control": 1.0})

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> CommunicationContract:
        if not cfg:
            return cls()
        return cls(
            upload_extras={str(k): float(v) for k, v in (cfg.get("upload_extras") or {}).items()},
            download_extras={str(k): float(v) for k, v in (cfg.get("download_extras") or {}).items()},
        )

    def check(self, extras: object, params: Mapping[str, Tensor], direction: str) -> int:
        """Bytes of a valid extras payload; :class:`ContractViolation` otherwise."""
        allowed = self.upload_extras if direction == "upload" else self.download_extras
        if not isinstance(extras, dict):
            kind = type(extras).__name__
            raise ContractViolation(f"{direction} extras must be a dict of tensors, got {kind}")
        param_bytes = sum(t.numel() * t.element_size() for t in params.values())
        used: dict[str, int] = {}
        for key, value in extras.items():
            kind, _, name = str(key).partition(".")
            if kind not in allowed:
                raise ContractViolation(
                    f"{direction} extra {key!r}: kind {kind!r} is not in the contract "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
                )
            if name not in params:
                raise ContractViolation(f"{direction} extra {key!r} does not name a model parameter")
            if not isinstance(value, Tensor) or value.shape != params[name].shape:
                raise ContractViolation(f"{direction} extra {key!r} must be a tensor shaped like {name!r}")
            if not value.dtype.is_floating_point or value.element_size() > 8:
                raise ContractViolation(f"{direction} extra {key!r} has dtype {value.dtype}, not a float")
            used[kind] = used.get(kind, 0) + value.numel() * value.element_size()
        for kind, nbytes in used.items():
            if nbytes > allowed[kind] * param_bytes:
                raise ContractViolation(
                    f"{direction} extras of kind {kind!r} take {nbytes} bytes, over the cap of "
                    f"{allowed[kind]:g} × {param_bytes} parameter bytes"
                )
        return sum(used.values())
