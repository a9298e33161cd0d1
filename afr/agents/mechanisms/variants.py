"""The model variant (slot ``variant``): train one of the profile's registered non-default models.

Its variants are the profile's (the environment's ``model_variants``), not the library's; the
environment offers it only when the profile has some.
"""

from __future__ import annotations

from ._base import Genome, Mechanism, method, register

register(
    Mechanism(
        "model_variant",
        "variant",
        ("model_variant",),
        "The profile's model variant {variant!r} is trained instead of the default model.",
    ),
)


def render_model_variant(genome: Genome) -> str | None:
    variant = genome.gene("variant")
    if variant is None:
        return None
    return method(
        "model_variant", "The profile's registered model variant to train.", [f'return "{variant.variant}"']
    )
