"""The control arm: a same-budget search over only the baseline recipe's declared scalars.

The control arm never sees recipe code, the agent arm, the engine or the sandbox: it proposes scalar values
(:meth:`ScalarControl.ask`) and receives scores (:meth:`ScalarControl.tell`). ``make_control`` builds the
configured control (``afr/conf/control/*.yaml``); :func:`record_agent_candidate` mirrors the agent arm as a
second Optuna study in the same storage, so ``optuna-dashboard <ledger-url>`` compares both arms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import ControlTrial, ScalarControl, TrialState
from ._optuna import (
    DIFF_CHARS,
    SAMPLERS,
    AgentStudyRecorder,
    OptunaControl,
    close_storages,
    open_storage,
    quiet_optuna,
    record_agent_candidate,
)

if TYPE_CHECKING:
    from ..recipe import Scalar

__all__ = [
    "ScalarControl",
    "ControlTrial",
    "TrialState",
    "OptunaControl",
    "AgentStudyRecorder",
    "record_agent_candidate",
    "make_control",
    "open_storage",
    "close_storages",
    "quiet_optuna",
    "CONTROL_KINDS",
    "SAMPLERS",
    "DIFF_CHARS",
]

CONTROL_KINDS = ("optuna",)
_OPTUNA_KEYS = {"kind", "sampler", "n_startup_trials", "enqueue_defaults"}


def make_control(
    cfg: Mapping[str, Any] | None,
    storage_url: str,
    study_name: str,
    space: Mapping[str, Scalar],
    seed: int,
    higher_is_better: bool,
    worker: str | None = None,
    parallel: bool = False,
    sole_writer: bool = False,
) -> ScalarControl:
    """The control arm described by ``cfg`` (the ``control:`` config group; empty means Optuna defaults);
    ``worker``: this process's name in a shared campaign; ``parallel``: trials are asked while earlier ones
    run; ``sole_writer``: no other process writes the study meanwhile (see :class:`OptunaControl`)."""
    cfg = dict(cfg or {})
    kind = cfg.get("kind", "optuna")
    if kind not in CONTROL_KINDS:
        raise ConfigError(
            f"unknown control kind {kind!r}", where="control.kind", fix=f"one of {', '.join(CONTROL_KINDS)}"
        )
    stray = sorted(set(cfg) - _OPTUNA_KEYS)
    if stray:
        raise ConfigError(
            f"the optuna control has no setting {', '.join(stray)}",
            where="control=",
            fix=f"settings: {', '.join(sorted(_OPTUNA_KEYS))}",
        )
    enqueue = cfg.get("enqueue_defaults", True)
    if not isinstance(enqueue, bool):
        raise ConfigError(f"enqueue_defaults must be true or false, got {enqueue!r}", where="control=")
    return OptunaControl(
        storage_url,
        study_name,
        space,
        seed=seed,
        higher_is_better=higher_is_better,
        n_startup_trials=cfg.get("n_startup_trials", 8),
        enqueue_defaults=enqueue,
        sampler=str(cfg.get("sampler", "tpe")),
        worker=worker,
        parallel=parallel,
        sole_writer=sole_writer,
    )
