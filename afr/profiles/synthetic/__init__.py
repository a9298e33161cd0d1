"""Synthetic(α, β) of FedProx (Li et al., 2020), written from the paper's definition.

Device k has n_k = floor(lognormal(4, 2)) + 50 samples; u_k ~ N(0, α²), W_k, b_k ~ N(u_k, 1);
B_k ~ N(0, β²), v_k ~ N(B_k, 1)^60; x ~ N(v_k, Σ) with Σ = diag(j^-1.2); y = argmax(xᵀW_k + b_k).
The iid variant shares one W, b ~ N(0, 1) and draws every x from N(0, Σ). Each device keeps a
random 90 % of its samples for training and 10 % for test (LEAF's split).

Grouping rule (devices -> clients): device d joins client ``d mod num_clients``, so every client
mixes ``num_devices / num_clients`` devices of different (W_k, v_k); the data is drawn once from
``data_seed`` and never depends on a run's seed.
"""

from .profile import Synthetic

__all__ = ["Synthetic"]
