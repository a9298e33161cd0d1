"""Shared fixtures: the real data beside the clone (``../shared/data``) and small helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
#
# The grouping is done by the scheduler below, from the test ids alone. xdist's own loadgroup reads
# `xdist_group` marks, which it turns into an `@group` suffix of the test id by assigning `item._nodeid`;
# pytest 9 keeps the id elsewhere, so the suffix is silently lost and every test became a group of its own:
# a module fixture was built again on each process that ran one of its tests, and the two canary files ran
# side by side.
_SHARED_CANARY = {"tests/adversarial/test_adversarial.py", "tests/adversarial/test_run_file.py"}

# Rough seconds per group on a 2-core machine, for the order in which groups are handed out only (the longest
# first, so that no long file is left to run alone at the end); a group missing here counts 0.5 s per test.
# A wrong or stale value costs wall time, never a result.
_SECONDS = {
    "tests/test_profile_campaigns.py": 151,
    "tests/test_ray_executor.py": 82,
    "tests/test_campaign.py": 77,
    "tests/test_interrupt.py": 72,
    "tests/test_environment_errors.py": 64,
    "tests/test_sandbox.py": 56,
    "tests/test_adversarial_unprivileged.py": 51,
    "tests/test_fail_loudly.py": 50,
    "tests/test_llm_operations.py": 49,
    "adversarial-canary": 48,
    "tests/test_shared_campaign.py": 43,
    "tests/test_cli.py": 36,
    "tests/test_storage_url.py": 34,
    "tests/test_integrity.py": 26,
    "tests/test_lookahead.py": 24,
    "tests/test_flower_export.py": 24,
    "tests/test_table.py": 24,
    "tests/test_racing.py": 23,
    "tests/test_baseline.py": 21,
    "tests/test_kits19.py": 19,
    "tests/test_evaluate.py": 19,
    "tests/test_retry.py": 18,
    "tests/test_parsing.py": 18,
    "tests/test_config_groups.py": 16,
    "tests/test_worked_example.py": 16,
    "tests/test_write_protection.py": 14,
    "tests/test_profile_folders.py": 14,
    "tests/test_resume.py": 14,
    "tests/test_gpu_safety.py": 13,
    "tests/test_ixi.py": 13,
    "tests/test_profiles_docs.py": 12,
    "tests/test_evolve.py": 11,
}


def group_of(nodeid: str) -> str:
    """The group (one process, one after the other) of a test: its file, or the canary files' shared one."""
    path = nodeid.split("::", 1)[0]
    return "adversarial-canary" if path in _SHARED_CANARY else path


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`: whole groups (group_of) to a process, the longest first (_SECONDS)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # the longest group still waiting goes next (the base class takes the first one queued)
            longest = max(self.workqueue, key=lambda g: _SECONDS.get(g, 0.5 * len(self.workqueue[g])))
            self.workqueue.move_to_end(longest, last=False)
            super()._assign_work_unit(node)

    return FileGroupScheduling(config, log)
