"""Per-dataset download lists and preprocessing: one module per profile.

Each module exposes ``FILES`` (the official raw files), ``is_prepared(folder)`` (the loader's layout is
complete) and ``prepare(folder, *, progress=True)`` (raw files in ``folder`` -> that layout; idempotent,
atomic). ``afr data fetch <profile>`` downloads ``FILES`` and then calls ``prepare``.
"""
