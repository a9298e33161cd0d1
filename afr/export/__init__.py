"""Exports of a campaign's candidate to other federated-learning frameworks: ``afr export flower``.

:func:`export_flower` writes a folder that runs one candidate as a Flower (``flwr``) federation: the recipe
file, a Flower ``Strategy`` and ``NumPyClient`` that call its hooks (``flower_app/``, copied verbatim) and a
simulation script. Nothing heavy is imported until a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._flower import export_flower

__all__ = ["export_flower"]


def __getattr__(name: str) -> Any:
    if name == "export_flower":
        from ._flower import export_flower

        return export_flower
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
