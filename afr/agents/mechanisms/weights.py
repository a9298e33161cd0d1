"""Client weighting (slot ``weights``): uniform or sqrt(n_k) weights instead of the number of samples.

Weights matter to the weighted mean and to FedNova's step rescaling, not to the robust combiners (see
:mod:`.aggregate`). Without a weights gene clients are weighted by their number of samples.
"""

from __future__ import annotations

from ._base import Gene, Mechanism, register

register(
    Mechanism(
        "sample_weighting",
        "weights",
        ("aggregate",),
        "Clients are weighted by {variant} instead of by their number of samples.",
        variants=("uniform", "sqrt"),
        variant_words={"sqrt": "sqrt(number of samples)", "uniform": "equal weights"},
    ),
)

_SQRT_WEIGHTS = [
    "# Client weights proportional to sqrt(n_k).",
    "roots = [math.sqrt(u.num_samples) for u in updates]",
    "weights = [r / sum(roots) for r in roots]",
]
_UNIFORM_WEIGHTS = "[1 / len(updates)] * len(updates)"


def weights_word(weights: Gene | None, weighted: bool) -> str:
    """How ``aggregate``'s docstring names the client weights (``weighted``: whether they are used)."""
    if not weighted:
        return "unweighted"
    if weights is None:
        return "sample-weighted"
    return "uniformly weighted" if weights.variant == "uniform" else "sqrt(n)-weighted"


def plain_mean(weights: Gene | None) -> list[str]:
    """The weighted mean of the client deltas, with no transform and no robust combiner."""
    if weights is None:
        return ["delta = weighted_mean_delta(updates)"]
    if weights.variant == "uniform":
        lines = ["# Every client counts the same.", f"weights = {_UNIFORM_WEIGHTS}"]
    else:
        lines = list(_SQRT_WEIGHTS)
    return [*lines, "delta = weighted_mean_delta(updates, weights)"]


def weight_lines(weights: Gene | None, weighted: bool) -> list[str]:
    """The lines that set ``weights`` (one per client) before the deltas are transformed and combined."""
    if weighted and weights is not None and weights.variant == "sqrt":
        return list(_SQRT_WEIGHTS)
    if weighted:
        return [f"weights = {'sample_weights(updates)' if weights is None else _UNIFORM_WEIGHTS}"]
    return []
