"""Schedules over rounds (slots ``lr_schedule`` and ``steps``): the client learning rate, the local steps.

``client_lr`` and ``local_steps`` = the base value x a schedule; schedules that depend on the fraction of
rounds done share the ``round_progress`` helper (rendered when one of them needs it). The class's
``horizon`` constant (the profile's rounds) is declared whenever ``client_lr`` or ``round_progress`` is.
"""

from __future__ import annotations

from ._base import Genome, Mechanism, method, register, scalar_spec

register(
    Mechanism(
        "lr_schedule",
        "lr_schedule",
        ("client_lr",),
        "The client learning rate follows a {variant} schedule over rounds.",
        {
            "cosine": {"lr_min_ratio": scalar_spec(0.1, 0.0, 1.0)},
            "step": {"lr_decay": scalar_spec(0.3, 0.05, 1.0)},
            "warmup": {
                "warmup_fraction": scalar_spec(0.2, 0.05, 0.5),
                "warmup_start": scalar_spec(0.1, 0.01, 1.0, True),
            },
        },
        ("cosine", "step", "warmup"),
    ),
    Mechanism(
        "step_schedule",
        "steps",
        ("local_steps",),
        "The number of local steps follows a {variant} schedule over rounds (never above the budget).",
        {
            "ramp": {"steps_start_fraction": scalar_spec(0.5, 0.1, 1.0)},
            "decay": {"steps_end_fraction": scalar_spec(0.5, 0.1, 1.0)},
        },
        ("ramp", "decay"),
    ),
)

_LR_SCHEDULES: dict[str, list[str]] = {
    "cosine": [
        "# Cosine decay from lr to lr_min_ratio * lr at the last round.",
        "progress = self.round_progress(round_idx)",
        "cosine = 0.5 * (1 + math.cos(math.pi * progress))",
        "return self.lr * (self.lr_min_ratio + (1 - self.lr_min_ratio) * cosine)",
    ],
    "step": [
        "# Multiply lr by lr_decay at half and again at three quarters of the rounds.",
        "progress = self.round_progress(round_idx)",
        "drops = int(progress >= 0.5) + int(progress >= 0.75)",
        "return self.lr * self.lr_decay**drops",
    ],
    "warmup": [
        "# Linear warm-up from warmup_start * lr to lr over the first warmup_fraction of rounds.",
        "warm_rounds = max(1, math.ceil(self.warmup_fraction * self.horizon))",
        "ramp = min(1.0, round_idx / warm_rounds)",
        "return self.lr * (self.warmup_start + (1 - self.warmup_start) * ramp)",
    ],
}
"""lr_schedule's variants: the body of ``client_lr``."""

_STEP_SCHEDULES: dict[str, list[str]] = {
    "ramp": [
        "# Ramp from steps_start_fraction of the budget up to the full budget at the last round.",
        "progress = self.round_progress(round_idx)",
        "fraction = self.steps_start_fraction + (1 - self.steps_start_fraction) * progress",
    ],
    "decay": [
        "# Decay from the full budget down to steps_end_fraction of it at the last round.",
        "progress = self.round_progress(round_idx)",
        "fraction = 1 - (1 - self.steps_end_fraction) * progress",
    ],
}
"""step_schedule's variants: the lines that set ``fraction`` of the step budget."""


def render_client_lr(genome: Genome) -> str | None:
    schedule = genome.gene("lr_schedule")
    if schedule is None:
        return None
    return method(
        "client_lr",
        f"Client learning rate on a {schedule.variant} schedule.",
        _LR_SCHEDULES[schedule.variant],
    )


def render_local_steps(genome: Genome) -> str | None:
    steps = genome.gene("steps")
    if steps is None:
        return None
    body = [*_STEP_SCHEDULES[steps.variant], "return min(max_steps, max(1, round(fraction * max_steps)))"]
    return method("local_steps", f"Local steps on a {steps.variant} schedule.", body)


def render_round_progress(genome: Genome) -> str | None:
    schedule = genome.gene("lr_schedule")
    if genome.gene("steps") is None and (schedule is None or schedule.variant == "warmup"):
        return None
    return method(
        "round_progress",
        "Fraction of the training rounds done: 0 at the first round, 1 at the last (horizon) round.",
        ["return min(1.0, round_idx / max(1, self.horizon - 1))"],
    )
