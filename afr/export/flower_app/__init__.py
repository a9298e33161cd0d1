"""The Flower app of an exported AFR candidate: copied verbatim into every ``afr export flower`` folder.

``task`` rebuilds the candidate on its profile, ``strategy`` is the server (a ``flwr`` ``Strategy``),
``client`` the client (a ``NumPyClient``), ``simulation`` runs both on one machine.
"""
