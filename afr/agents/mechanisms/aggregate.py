"""The ``aggregate`` composer: client weights x delta transforms x combiner x server update [+ SCAFFOLD's c].

``aggregate`` is not stacked overrides: it is rendered from the whole genome, each slot's module giving
its fragment — :mod:`.weights` (client weights), :mod:`.transforms` (FedNova normalisation, norm
clipping), :mod:`.combiners` (weighted mean / trimmed mean / median), :mod:`.scaffold` (the server
control variate) and :mod:`.server` (SGD / momentum / Adam / Yogi / Adagrad).
"""

from __future__ import annotations

from . import combiners, scaffold, server, transforms, weights
from ._base import Genome, method


def render_aggregate(genome: Genome) -> str | None:
    if not any("aggregate" in gene.mechanism.hooks for gene in genome.genes):
        return None
    g = genome.gene
    # Client weights matter to the weighted mean and to FedNova's step rescaling, not to robust combiners.
    weighted = combiners.weighted(g("combiner")) or g("nova") is not None
    words = [weights.weights_word(g("weights"), weighted)]
    if g("nova") is None and g("clip") is None and g("combiner") is None:
        body = weights.plain_mean(g("weights"))
    else:
        body = _combined_deltas(genome, weighted, words)
    body += scaffold.server_control_lines(genome)
    body += server.server_update(g("server"), words)
    doc = "New global parameters: " + ", ".join(words) + "."
    return method("aggregate", doc, body)


def _combined_deltas(genome: Genome, weighted: bool, words: list[str]) -> list[str]:
    """Client weights, per-client transforms and the combiner; appends their words to ``words``."""
    body = weights.weight_lines(genome.gene("weights"), weighted)
    body.append("deltas = [u.delta for u in updates]")
    body += transforms.transform_lines(genome, words)
    body += combiners.combine(genome.gene("combiner"), words)
    body += transforms.rescale_lines(genome)
    return body
