"""The math of the FL mechanisms, once: pure functions that the recipe classes and candidate files call.

Parameter-dict helpers (weights, mean delta, proximal term), the server optimisers' update rules
(FedAvgM's heavy ball, FedOpt's moments and step, one second-moment rule per FedAdam/FedYogi/FedAdagrad)
and SCAFFOLD's control-variate updates. The evolve agent's templates call the same functions, so a
mechanism written by the agent computes exactly what the shipped recipe computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._base import ClientUpdate, LocalContext, Params

__all__ = [
    "weighted_mean_delta",
    "proximal_term",
    "sample_weights",
    "heavy_ball",
    "first_moment",
    "adam_second_moment",
    "yogi_second_moment",
    "adagrad_second_moment",
    "adaptive_step",
    "scaffold_broadcast",
    "scaffold_correction",
    "scaffold_client_control",
    "scaffold_server_control",
]

CONTROL = "control"
"""SCAFFOLD's control variates: the key in server/client state and the kind of their extras."""


def sample_weights(updates: Sequence[ClientUpdate]) -> list[float]:
    """FedAvg weights w_k = n_k / sum_j n_j."""
    total = float(sum(u.num_samples for u in updates))
    return [u.num_samples / total for u in updates]


def weighted_mean_delta(updates: Sequence[ClientUpdate], weights: Sequence[float] | None = None) -> Params:
    """Weighted average of the client deltas (sample weights by default)."""
    if not updates:
        raise ValueError("no client updates to aggregate")
    weights = sample_weights(updates) if weights is None else weights
    out: Params = {}
    for key in updates[0].delta:
        acc = torch.zeros_like(updates[0].delta[key])
        for update, weight in zip(updates, weights, strict=True):
            acc.add_(update.delta[key], alpha=weight)
        out[key] = acc
    return out


def proximal_term(model: nn.Module, reference: Params) -> Tensor:
    """Squared L2 distance between the model's parameters and ``reference`` (FedProx's ||θ - x||²)."""
    total: Tensor | None = None
    for name, param in model.named_parameters():
        term = (param - reference[name]).pow(2).sum()
        total = term if total is None else total + term
    assert total is not None, "model has no parameters"
    return total


# --- server optimisers (one parameter tensor at a time) ----------------------------------------------


def heavy_ball(velocity: Tensor, delta: Tensor, momentum: float) -> Tensor:
    """Server momentum (FedAvgM): v <- momentum * v + delta."""
    return momentum * velocity + delta


def first_moment(m: Tensor, delta: Tensor, beta1: float) -> Tensor:
    """FedOpt's first moment of the pseudo-gradient: m <- beta1 * m + (1 - beta1) * delta."""
    return beta1 * m + (1 - beta1) * delta


def adam_second_moment(v: Tensor, delta: Tensor, beta2: float) -> Tensor:
    """FedAdam: v <- beta2 * v + (1 - beta2) * delta²."""
    return beta2 * v + (1 - beta2) * delta * delta


def yogi_second_moment(v: Tensor, delta: Tensor, beta2: float) -> Tensor:
    """FedYogi: v <- v - (1 - beta2) * delta² * sign(v - delta²)."""
    squared = delta * delta
    return v - (1 - beta2) * squared * torch.sign(v - squared)


def adagrad_second_moment(v: Tensor, delta: Tensor) -> Tensor:
    """FedAdagrad: v <- v + delta²."""
    return v + delta * delta


def adaptive_step(x: Tensor, m: Tensor, v: Tensor, lr: float, tau: float) -> Tensor:
    """FedOpt's server step: x + lr * m / (sqrt(v) + tau) (no bias correction, as in FLamby)."""
    return x + lr * m / (v.sqrt() + tau)


# --- SCAFFOLD (Karimireddy et al., 2020, option II) ----------------------------------------------------


def scaffold_broadcast(server_state: dict[str, Any]) -> Params:
    """The server control variate c as ``control.<parameter>`` extras (none before the first update)."""
    return {f"{CONTROL}.{name}": c for name, c in server_state.get(CONTROL, {}).items()}


def scaffold_correction(loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
    """``loss`` plus the linear terms <θ, c> - <θ, c_i> whose gradient c - c_i corrects the client's drift."""
    own = ctx.client_state.get(CONTROL, {})
    for name, param in model.named_parameters():
        server_c = ctx.server_extras.get(f"{CONTROL}.{name}")
        if server_c is not None:
            loss = loss + (param * server_c).sum()
        if name in own:
            loss = loss - (param * own[name]).sum()
    return loss


def scaffold_client_control(delta: Params, ctx: LocalContext) -> Params:
    """Update the client's c_i <- c_i - c - delta / (steps * lr) in ``ctx.client_state``; return the upload.

    The upload is the change of c_i as ``control.<parameter>`` extras (none when the client took no step).
    """
    if ctx.num_steps == 0 or ctx.lr == 0:
        return {}
    own = ctx.client_state.setdefault(CONTROL, {k: torch.zeros_like(d) for k, d in delta.items()})
    upload: Params = {}
    for name, d in delta.items():
        server_c = ctx.server_extras.get(f"{CONTROL}.{name}", torch.zeros_like(d))
        updated = own[name] - server_c - d / (ctx.num_steps * ctx.lr)
        upload[f"{CONTROL}.{name}"] = updated - own[name]
        own[name] = updated
    return upload


def scaffold_server_control(
    server_state: dict[str, Any],
    global_params: Params,
    updates: Sequence[ClientUpdate],
    participation: float | None = None,
) -> None:
    """Move the server's c (in ``server_state``) by the mean of the reporting clients' uploads.

    ``participation`` (the fraction of clients sampled per round) scales the move when given.
    """
    control = server_state.setdefault(CONTROL, {k: torch.zeros_like(p) for k, p in global_params.items()})
    reporting = [u for u in updates if u.extras]
    for name in control:
        for update in reporting:
            change = update.extras[f"{CONTROL}.{name}"] / len(reporting)
            if participation is not None:
                change = change * participation
            control[name] = control[name] + change
