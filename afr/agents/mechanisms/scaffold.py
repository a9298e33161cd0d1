"""SCAFFOLD (slot ``scaffold``): control variates carried as the contract's ``control`` extras.

It touches four hooks: ``broadcast`` and ``client_extras`` are its own (rendered here); its correction
term joins ``local_objective`` (see :mod:`.objective`) and its server control update joins ``aggregate``
(see :mod:`.aggregate`). The fragments call the same functions of ``afr.recipe`` as the shipped
SCAFFOLD recipe. The environment offers it only when the contract carries ``control`` both ways.
"""

from __future__ import annotations

from ._base import Genome, Mechanism, method, register

register(
    Mechanism(
        "scaffold",
        "scaffold",
        ("broadcast", "local_objective", "client_extras", "aggregate"),
        "SCAFFOLD control variates travel as the contract's control extras: clients correct their "
        "gradient by c - c_i and upload the change of c_i; the server averages the changes into c.",
    ),
)

OBJECTIVE_TERM: tuple[str, list[str]] = (
    "the SCAFFOLD correction",
    [
        "# SCAFFOLD: a linear term whose gradient is c - c_i corrects the client's drift.",
        "loss = scaffold_correction(loss, model, ctx)",
    ],
)
"""The term ``local_objective`` adds to the loss: (words for the docstring, lines)."""


def render_broadcast(genome: Genome) -> str | None:
    if not genome.has("scaffold"):
        return None
    return method(
        "broadcast",
        "SCAFFOLD: send the server control variate c as the contract's control extras.",
        ["return scaffold_broadcast(server_state)"],
    )


def render_client_extras(genome: Genome) -> str | None:
    if not genome.has("scaffold"):
        return None
    return method(
        "client_extras",
        "SCAFFOLD option II: c_i+ = c_i - c - delta / (steps * lr); upload c_i+ - c_i.",
        ["return scaffold_client_control(delta, ctx)"],
    )


def server_control_lines(genome: Genome) -> list[str]:
    """SCAFFOLD's server control variate update (scaled by participation under client sampling)."""
    if not genome.has("scaffold"):
        return []
    if genome.has("client_sampling"):
        return [
            "# SCAFFOLD: c moves by the mean change of the clients' control variates (x participation).",
            "scaffold_server_control(server_state, global_params, updates, self.client_fraction)",
        ]
    return [
        "# SCAFFOLD: c moves by the mean change of the clients' control variates.",
        "scaffold_server_control(server_state, global_params, updates)",
    ]
