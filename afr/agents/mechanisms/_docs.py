"""The docstrings of a candidate file: the module's, and the evolve class's (title, one bullet per gene,
what is left to the baseline, the ``Mechanisms:`` line)."""

from __future__ import annotations

import textwrap

from ...recipe import DEFAULT_BASELINE, RecipeSource
from ._base import Gene, Genome
from ._environment import Environment
from ._genome_io import marker_lines


def describe_gene(gene: Gene) -> str:
    """The gene's sentence for the class docstring (its mechanism's summary with the variant filled in)."""
    mech = gene.mechanism
    variant = mech.variant_words.get(gene.variant, gene.variant)
    return mech.summary.replace("{variant!r}", repr(gene.variant)).replace("{variant}", variant)


def _title(genome: Genome, baseline: RecipeSource) -> str:
    base = baseline.class_name
    if not genome.genes:
        if baseline.shipped == DEFAULT_BASELINE:
            return "FedAvg unchanged: every client, the full step budget, plain task loss."
        return f"{base} unchanged."
    title = f"{base} plus " + ", ".join(g.token for g in genome.genes) + "."
    return title if len(title) <= 96 else f"{base} plus {len(genome.genes)} mechanisms (listed below)."


def _otherwise(genome: Genome, baseline: RecipeSource) -> list[str]:
    """What the genome leaves to the baseline, as a docstring bullet (FedAvg's defaults spelled out)."""
    if baseline.shipped != DEFAULT_BASELINE:
        text = f"Otherwise as {baseline.class_name}: the hooks not written here are inherited from it."
        return textwrap.wrap(text, 100, initial_indent="- ", subsequent_indent="  ")
    untouched = [
        text
        for slot, text in (
            ("sampling", "all clients train every round"),
            ("steps", "clients use the full local step budget"),
            ("lr_schedule", "the client learning rate is constant"),
            ("server", "the server applies x <- x + server_lr * update"),
        )
        if genome.gene(slot) is None
    ]
    if not untouched:
        return []
    text = "Otherwise as FedAvg: " + "; ".join(untouched) + "."
    return textwrap.wrap(text, 100, initial_indent="- ", subsequent_indent="  ")


def class_docstring(genome: Genome, env: Environment) -> str:
    lines = [_title(genome, env.baseline), ""]
    if genome.genes:
        for gene in genome.genes:
            lines += textwrap.wrap(describe_gene(gene), 100, initial_indent="- ", subsequent_indent="  ")
        lines += _otherwise(genome, env.baseline)
        lines.append("")
    lines += marker_lines(genome)
    return "\n    ".join(lines).replace("\n    \n", "\n\n") + "\n    "


def module_doc(baseline: RecipeSource) -> str:
    """The candidate file's module docstring."""
    if baseline.shipped:
        base = baseline.class_name
        return (
            f"Candidate recipe written by the evolve agent: libcst edits of the {base} baseline.\n\n"
            "The recipe class's docstring says what it does; its last line lists the mechanisms.\n"
        )
    first = (
        f"Candidate recipe written by the evolve agent: the {baseline.class_name} baseline "
        f"({baseline.label}) and a subclass of it made by libcst edits."
    )
    return (
        "\n".join(textwrap.wrap(first, 100))
        + "\n\nThe subclass's docstring says what it changes; its last line lists the mechanisms.\n"
    )
