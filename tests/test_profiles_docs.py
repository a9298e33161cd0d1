"""docs/profiles.md is generated from the code and the shared data, and kept in sync."""

from __future__ import annotations

from pathlib import Path

from afr.profiles import make_profile, profile_names
from afr.profiles.__main__ import main
from afr.profiles._docs import render_profiles_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "profiles.md"


def test_profiles_doc_is_up_to_date(shared_data: Path) -> None:
    text = render_profiles_docs(shared_data)
    assert DOCS.is_file(), "run `python -m afr.profiles docs --data-dir ../shared/data`"
    current = DOCS.read_text(encoding="utf-8")
    assert current == text, (
        "docs/profiles.md is stale: run `python -m afr.profiles docs --data-dir ../shared/data`"
    )


def test_profiles_doc_content(shared_data: Path) -> None:
    text = render_profiles_docs(shared_data)
    for name in profile_names():
        assert f"## `{name}`" in text
        profile = make_profile(name, data_dir=shared_data)
        assert f"(K = {profile.num_clients})" in text
        section = text.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        assert profile.grouping_rule() in section
        if profile.cfg.get("grouping"):
            assert "\n- why: " in section, f"{name}: the grouping's justification (grouping.why) is missing"
        for held in profile.heldout_client_names:
            assert f"| {held} |" in section or "afr data fetch" in section
    # real sizes, e.g. heart_disease's Cleveland: 199 train rows = 159 fit + 40 val, 104 test (FLamby)
    assert "| cleveland | 159 | 40 | 104 | — |" in text


def test_check_flag(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "profiles.md"
    assert main(["docs", "--data-dir", str(shared_data), "--check", "--output", str(out)]) == 1
    assert main(["docs", "--data-dir", str(shared_data), "--output", str(out)]) == 0
    assert main(["docs", "--data-dir", str(shared_data), "--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited\n")
    assert main(["docs", "--data-dir", str(shared_data), "--check", "--output", str(out)]) == 1
