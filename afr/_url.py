"""Whether a place given on the command line is a database URL or a folder — one rule for every command.

Kept apart from ``afr.ledger`` (which loads SQLAlchemy) so that ``afr report`` and ``afr export`` can check
their input before any slow import.
"""

from __future__ import annotations

import os
import re

__all__ = ["is_database_url"]

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_database_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a database URL (``scheme://...``) rather than a campaign directory."""
    return isinstance(text, str) and _URL_SCHEME.match(text) is not None
