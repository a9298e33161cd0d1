"""Robust combiners (slot ``combiner``): coordinate-wise trimmed mean and median of the client deltas.

A combiner is the step of ``aggregate`` (see :mod:`.aggregate`) that turns the (transformed) client
deltas into one ``delta``; without a combiner gene it is the weighted mean. Robust combiners are
unweighted: client weights then matter only to FedNova's step rescaling.
"""

from __future__ import annotations

from ._base import Gene, Mechanism, register, scalar_spec

register(
    Mechanism(
        "trimmed_mean",
        "combiner",
        ("aggregate",),
        "Client updates are combined by a coordinate-wise trimmed mean (unweighted), "
        "dropping the trim_fraction largest and smallest values.",
        {"": {"trim_fraction": scalar_spec(0.2, 0.05, 0.45)}},
    ),
    Mechanism(
        "median",
        "combiner",
        ("aggregate",),
        "Client updates are combined by their coordinate-wise median (unweighted).",
    ),
)

_COMBINERS: dict[str | None, tuple[str, list[str]]] = {
    None: ("mean", ["delta = {k: sum(w * d[k] for w, d in zip(weights, deltas)) for k in global_params}"]),
    "trimmed_mean": (
        "coordinate-wise trimmed mean",
        [
            "# Coordinate-wise trimmed mean: drop the trim_fraction largest and smallest values.",
            "cut = min(int(self.trim_fraction * len(deltas)), (len(deltas) - 1) // 2)",
            "delta = {}",
            "for k in global_params:",
            "    ordered = torch.sort(torch.stack([d[k] for d in deltas]), dim=0).values",
            "    delta[k] = ordered[cut : len(deltas) - cut].mean(dim=0)",
        ],
    ),
    "median": (
        "coordinate-wise median",
        [
            "# Coordinate-wise median of the client deltas.",
            "delta = {}",
            "for k in global_params:",
            "    delta[k] = torch.quantile(torch.stack([d[k] for d in deltas]), 0.5, dim=0)",
        ],
    ),
}
"""How the (transformed) client deltas become one delta (combiner key, None: the weighted mean)."""


def weighted(combiner: Gene | None) -> bool:
    """Whether the combiner uses client weights (only the weighted mean does)."""
    return combiner is None


def combine(combiner: Gene | None, words: list[str]) -> list[str]:
    """The lines that set ``delta`` from ``deltas``; appends their words to ``words``."""
    word, lines = _COMBINERS[None if combiner is None else combiner.key]
    words.append(word)
    return lines
