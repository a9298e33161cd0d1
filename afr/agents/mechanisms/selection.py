"""Client selection (slot ``sampling``): a seeded random subset of the clients each round.

Without it every client trains every round. Under SCAFFOLD the server control update is scaled by
``client_fraction`` (see :mod:`.scaffold`).
"""

from __future__ import annotations

from ._base import Genome, Mechanism, method, register, scalar_spec

register(
    Mechanism(
        "client_sampling",
        "sampling",
        ("select_clients",),
        "Each round a seeded random subset of about client_fraction of the clients trains (never empty).",
        {"": {"client_fraction": scalar_spec(0.5, 0.2, 1.0)}},
    ),
)


def render_select_clients(genome: Genome) -> str | None:
    if genome.gene("sampling") is None:
        return None
    return method(
        "select_clients",
        "A seeded random subset of about client_fraction of the clients, never empty.",
        [
            "count = min(num_clients, max(1, round(self.client_fraction * num_clients)))",
            "order = torch.randperm(num_clients, generator=rng)",
            "return sorted(int(c) for c in order[:count].tolist())",
        ],
    )
