"""Server optimisers (slot ``server``): momentum, Adam, Yogi, Adagrad on the aggregated update.

Each one is the last step of ``aggregate`` (see :mod:`.aggregate`): :func:`server_update` turns the
combined ``delta`` into the new global parameters. They call the same functions of ``afr.recipe`` as the
shipped FedAvgM / FedAdam / FedYogi / FedAdagrad recipes, so they compute exactly what those compute.
Without a server gene the step is plain server SGD: ``x <- x + server_lr * delta``.
"""

from __future__ import annotations

from ._base import Gene, Mechanism, register, scalar_spec

_ADAPTIVE = {
    "beta1": scalar_spec(0.9, 0.0, 0.999),
    "beta2": scalar_spec(0.999, 0.9, 0.99999),
    "tau": scalar_spec(1e-3, 1e-9, 0.1, True),
}

register(
    Mechanism(
        "server_momentum",
        "server",
        ("aggregate",),
        "The server applies heavy-ball momentum to the aggregated update (FedAvgM).",
        {"": {"server_momentum": scalar_spec(0.9, 0.0, 0.99)}},
    ),
    Mechanism(
        "server_adam",
        "server",
        ("aggregate",),
        "The server treats the aggregated update as a pseudo-gradient for Adam: "
        "x <- x + server_lr * m / (sqrt(v) + tau) (FedAdam).",
        {"": _ADAPTIVE},
    ),
    Mechanism(
        "server_yogi",
        "server",
        ("aggregate",),
        "The server uses Yogi's sign-controlled second moment: "
        "x <- x + server_lr * m / (sqrt(v) + tau) (FedYogi).",
        {"": _ADAPTIVE},
    ),
    Mechanism(
        "server_adagrad",
        "server",
        ("aggregate",),
        "The server uses Adagrad's accumulated second moment: "
        "x <- x + server_lr * m / (sqrt(v) + tau) (FedAdagrad).",
        {"": {k: v for k, v in _ADAPTIVE.items() if k != "beta2"}},
    ),
)

ADAPTIVE_SERVERS = ("server_adam", "server_yogi", "server_adagrad")
"""The adaptive optimisers: their server_lr default is the environment's ``adaptive_server_lr``."""

_SECOND_MOMENTS = {
    "server_adam": ("Adam", "v[k] = adam_second_moment(v[k], d, self.beta2)"),
    "server_yogi": ("Yogi", "v[k] = yogi_second_moment(v[k], d, self.beta2)"),
    "server_adagrad": ("Adagrad", "v[k] = adagrad_second_moment(v[k], d)"),
}
"""The adaptive server optimisers: (name, the second-moment update line)."""


def server_update(server: Gene | None, words: list[str]) -> list[str]:
    """The server step from ``delta`` to the new global parameters; appends its words to ``words``."""
    if server is None:
        words.append("server SGD step")
        return ["return {k: global_params[k] + self.server_lr * delta[k] for k in global_params}"]
    if server.key == "server_momentum":
        words.append("server momentum")
        return [
            "# Server momentum: v <- server_momentum * v + delta; x <- x + server_lr * v.",
            "zeros = {k: torch.zeros_like(d) for k, d in delta.items()}",
            'velocity = server_state.setdefault("velocity", zeros)',
            "for k, d in delta.items():",
            "    velocity[k] = heavy_ball(velocity[k], d, self.server_momentum)",
            "return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}",
        ]
    name, second_moment = _SECOND_MOMENTS[server.key]
    words.append(f"server {name}")
    return [
        f"# Server {name} on the pseudo-gradient delta: x <- x + server_lr * m / (sqrt(v) + tau).",
        'm = server_state.setdefault("m", {k: torch.zeros_like(d) for k, d in delta.items()})',
        'v = server_state.setdefault("v", {k: torch.zeros_like(d) for k, d in delta.items()})',
        "new: Params = {}",
        "for k, d in delta.items():",
        "    m[k] = first_moment(m[k], d, self.beta1)",
        f"    {second_moment}",
        "    new[k] = adaptive_step(global_params[k], m[k], v[k], self.server_lr, self.tau)",
        "return new",
    ]
