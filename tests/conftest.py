"""Shared fixtures: the real data beside the clone (``../shared/data``) and small helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `from tests._http import ...` works from any working directory
    sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(os.environ.get("AFR_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data (heart_disease, tcga_brca, femnist, shakespeare)."""
    if not (SHARED_DATA / "heart_disease").is_dir():
        pytest.fail(
            f"real data not found at {SHARED_DATA}: clone the project beside ../shared or set AFR_SHARED_DATA"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of an empty database on a throwaway PostgreSQL server (tests/_postgres.py),
    stopped and removed at the end of the session; a skip naming the package when the server is missing."""
    from tests._postgres import postgres_missing, throwaway_postgres

    missing = postgres_missing()
    if missing is not None:
        pytest.skip(missing)
    with throwaway_postgres() as url:
        yield url


# The suite runs on two processes (pytest-xdist, `--dist loadgroup` in pyproject.toml). Each test file stays
# on one process, so module fixtures (a campaign several tests read) are built once; the files that write
# the adversarial suite's fixed canary path (/tmp/afr_adversarial_canary) share one group so that they never
# run at the same time.
_SHARED_CANARY = {"tests/adversarial/test_adversarial.py", "tests/adversarial/test_run_file.py"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        group = "adversarial-canary" if path in _SHARED_CANARY else path
        item.add_marker(pytest.mark.xdist_group(group))
