"""Terms of the local objective (slots ``prox`` and ``l2``) and the ``local_objective`` composer.

``local_objective`` = task loss + the genome's terms, in the order of :data:`_TERMS`: FedProx's proximal
term, an L2 penalty, SCAFFOLD's correction (declared in :mod:`.scaffold`).
"""

from __future__ import annotations

from . import scaffold
from ._base import Genome, Mechanism, method, register, scalar_spec

register(
    Mechanism(
        "prox",
        "prox",
        ("local_objective",),
        "Clients add FedProx's proximal term mu/2 ||theta - x||^2 to the task loss.",
        {"": {"mu": scalar_spec(0.01, 1e-4, 10.0, True)}},
    ),
    Mechanism(
        "l2",
        "l2",
        ("local_objective",),
        "Clients add an L2 penalty weight_decay/2 ||theta||^2 (weight decay) to the task loss.",
        {"": {"weight_decay": scalar_spec(1e-4, 1e-6, 0.1, True)}},
    ),
)

_TERMS: dict[str, tuple[str, list[str]]] = {
    "prox": (
        "a proximal term",
        [
            "# FedProx: stay close to the global parameters the client received.",
            "loss = loss + self.mu / 2 * proximal_term(model, ctx.global_params)",
        ],
    ),
    "l2": (
        "an L2 penalty",
        [
            "# Weight decay: an L2 penalty on the parameters.",
            "loss = loss + self.weight_decay / 2 * sum(p.pow(2).sum() for p in model.parameters())",
        ],
    ),
    "scaffold": scaffold.OBJECTIVE_TERM,
}
"""The terms ``local_objective`` adds to the task loss, in this order: (words for the docstring, lines)."""


def render_local_objective(genome: Genome) -> str | None:
    terms = [key for key in _TERMS if genome.has(key)]
    if not terms:
        return None
    body = ["loss = task_loss"]
    words = ["the task loss"]
    for key in terms:
        words.append(_TERMS[key][0])
        body += _TERMS[key][1]
    body.append("return loss")
    doc = "The sum of " + ", ".join(words[:-1]) + " and " + words[-1] + "."
    return method("local_objective", doc, body)
