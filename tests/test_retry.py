"""A failed campaign is retried under its own name, as a user would: the same command, after fixing the cause.

The baseline ``fragile.py`` passes the one-round preflight and breaks in round 1 of its search run, so the
campaign ends ``failed`` (exit 1). The user fixes the file and runs the same command: attempt 2 starts in the
same campaign directory and finishes; attempt 1's records (its failed run included) are kept, unchanged, in
``<campaign dir>/attempts/1``; the new ledger records ``attempt: 2``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from afr.ledger import Ledger
from tests.test_fail_loudly import DATA, FRAGILE, afr_run, charged_runs, user_folder

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="heart_disease data not available")

COMMAND = ["data_dir=data", "baseline=fragile.py", "campaign.dir=camp", "campaign.name=fragile"]


def test_a_failed_campaign_is_retried_by_the_same_command(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    (folder / "fragile.py").write_text(FRAGILE.format(fail_from=1))
    first = afr_run(folder, *COMMAND)
    out = first.stdout + first.stderr
    assert first.returncode == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    fixes = [line.strip() for line in out.splitlines() if line.strip().startswith("fix: ")]
    assert len(errors) == 1 and "broken in round 1" in errors[0], out
    assert fixes and "run the same command again: attempt 2 starts" in fixes[-1], out
    assert "new campaign.name" not in out

    (folder / "fragile.py").write_text(FRAGILE.format(fail_from=99))  # the fix
    second = afr_run(folder, *COMMAND)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    archive = folder / "camp" / "attempts" / "1"
    assert f"that attempt's records are kept in {archive.resolve()}; starting attempt 2" in out, out

    # Attempt 1, as it ended: failed, its one charged (failed) baseline run still recorded.
    old = Ledger.for_campaign_dir(archive)
    failed = old.campaign_by_name("fragile")
    assert failed is not None and failed.status == "failed"
    runs = old.runs(failed.id, stage="search")
    assert [r.status for r in runs] == ["failed"] and "broken in round 1" in (runs[0].message or "")
    assert charged_runs(old, failed.id) == {"control": 1}
    assert "the campaign failed" in (archive / "report.md").read_text()
    old.close()

    # Attempt 2: a campaign of its own name in the campaign dir, recorded as the second attempt, finished.
    new = Ledger.for_campaign_dir(folder / "camp")
    campaign = new.campaign_by_name("fragile")
    assert campaign is not None and campaign.status == "finished", out
    assert campaign.config["attempt"] == 2 and "attempt" not in failed.config
    assert charged_runs(new, campaign.id)["control"] == 2
    assert all(r.status == "ok" for r in new.runs(campaign.id, stage="search"))
    new.close()
