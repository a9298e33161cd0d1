"""Per-client delta transforms (slots ``nova`` and ``clip``): FedNova normalisation, norm clipping.

They run in ``aggregate`` (see :mod:`.aggregate`) between the client weights and the combiner, in the
order of :data:`_TRANSFORMS`.
"""

from __future__ import annotations

from ._base import Genome, Mechanism, register, scalar_spec

register(
    Mechanism(
        "fednova",
        "nova",
        ("aggregate",),
        "Each client's update is divided by its local steps and the average is rescaled by the "
        "weighted mean step count (FedNova's normalised averaging).",
    ),
    Mechanism(
        "delta_clip",
        "clip",
        ("aggregate",),
        "Client updates whose norm exceeds clip_multiplier times the median norm are scaled down.",
        {"": {"clip_multiplier": scalar_spec(2.0, 0.5, 10.0, True)}},
    ),
)

_TRANSFORMS: dict[str, tuple[str, list[str]]] = {
    "nova": (
        "FedNova-normalised",
        [
            "# FedNova: divide each delta by its local steps; rescale by the weighted mean step count.",
            "steps = [max(1, u.num_steps) for u in updates]",
            "tau_eff = sum(w * s for w, s in zip(weights, steps))",
            "deltas = [{k: d / s for k, d in delta.items()} for delta, s in zip(deltas, steps)]",
        ],
    ),
    "clip": (
        "norm-clipped",
        [
            "# Scale down deltas whose norm exceeds clip_multiplier times the median norm.",
            "norms = [math.sqrt(sum(float(d.pow(2).sum()) for d in delta.values())) for delta in deltas]",
            "bound = self.clip_multiplier * sorted(norms)[len(norms) // 2]",
            "scales = [min(1.0, bound / (norm + 1e-12)) for norm in norms]",
            "deltas = [{k: d * s for k, d in delta.items()} for delta, s in zip(deltas, scales)]",
        ],
    ),
}
"""Per-client delta transforms, in this order (slot -> words for the docstring, lines)."""


def transform_lines(genome: Genome, words: list[str]) -> list[str]:
    """The genome's transforms of ``deltas``, in order; appends their words to ``words``."""
    body: list[str] = []
    for slot, (word, lines) in _TRANSFORMS.items():
        if genome.gene(slot) is not None:
            words.append(word)
            body += lines
    return body


def rescale_lines(genome: Genome) -> list[str]:
    """FedNova's rescaling of the combined delta by the weighted mean step count (none without it)."""
    if genome.gene("nova") is None:
        return []
    return ["delta = {k: tau_eff * d for k, d in delta.items()}"]
