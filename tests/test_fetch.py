"""afr.data fetching: mirror download, skip, resume, checksum failure, require/verify and the CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from afr.cli import main
from afr.data import profile_dir
from afr.errors import ChecksumError, ConfigError, DataError
from tests._data import fetch, require, source, verify
from tests._http import serve_directory

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

if not SHARED.is_dir():
    pytest.skip(f"real data folder not found at {SHARED}", allow_module_level=True)

HD = "heart_disease"
SOURCES = {name: source(name).files for name in ("heart_disease", "tcga_brca", "synthetic")}
CLEVELAND = "processed.cleveland.data"
HUNGARIAN = "processed.hungarian.data"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's real cache even if a test forgets data_dir.
    monkeypatch.setenv("AFR_DATA_DIR", str(tmp_path / "default"))


@pytest.fixture
def mirror():
    with serve_directory(SHARED) as url:
        yield url


def test_registry_matches_real_data() -> None:
    for profile in ("heart_disease", "tcga_brca"):
        assert SOURCES[profile]
        assert verify(profile, SHARED) == {f.filename: True for f in SOURCES[profile]}
        assert require(profile, SHARED) == SHARED / profile
    assert SOURCES["synthetic"] == ()
    assert fetch("synthetic", SHARED) == []  # nothing to download, nothing written


@pytest.mark.parametrize("profile", ["heart_disease", "tcga_brca"])
def test_fetch_from_mirror_then_skip(profile: str, tmp_path: Path, mirror) -> None:
    with pytest.raises(DataError) as info:
        require(profile, tmp_path)
    text = info.value.message
    assert f"afr data fetch {profile}" in text and str(tmp_path / profile) in text
    assert all(f.filename in text for f in SOURCES[profile])

    paths = fetch(profile, tmp_path, mirror=mirror, progress=False)
    assert paths == [tmp_path / profile / f.filename for f in SOURCES[profile]]
    for f in SOURCES[profile]:
        assert md5(tmp_path / profile / f.filename) == md5(SHARED / profile / f.filename) == f.md5
    assert require(profile, tmp_path) == tmp_path / profile
    assert not list((tmp_path / profile).glob("*.part"))
    assert len(mirror.requests) == len(SOURCES[profile])
    assert all(seen.status == 200 and seen.range is None for seen in mirror.requests)

    fetch(profile, tmp_path, mirror=mirror, progress=False)
    assert len(mirror.requests) == len(SOURCES[profile])  # second fetch: nothing requested


def test_interrupted_download_resumes(tmp_path: Path, mirror) -> None:
    final = tmp_path / HD / CLEVELAND
    part = final.with_name(CLEVELAND + ".part")
    mirror.fail_after_bytes[CLEVELAND] = 5000

    with pytest.raises(DataError) as info:
        fetch(HD, tmp_path, mirror=mirror, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert f"{mirror}/{HD}/{CLEVELAND}" in info.value.message
    assert "5000" in info.value.message
    assert not final.exists()
    assert part.stat().st_size == 5000
    assert sorted(p.name for p in final.parent.iterdir()) == [part.name]

    mirror.fail_after_bytes.clear()
    fetch(HD, tmp_path, mirror=mirror, progress=False)
    resumed = [s for s in mirror.requests if s.path.endswith(CLEVELAND)][-1]
    assert resumed.range == "bytes=5000-" and resumed.status == 206
    assert md5(final) == SOURCES[HD][0].md5
    assert not part.exists()
    assert all(verify(HD, tmp_path).values())


def test_resume_when_server_ignores_range(tmp_path: Path, mirror) -> None:
    part = tmp_path / HD / (CLEVELAND + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that a Range-ignoring server must not be appended to")
    mirror.ignore_range = True
    fetch(HD, tmp_path, mirror=mirror, progress=False)
    first = [s for s in mirror.requests if s.path.endswith(CLEVELAND)][0]
    assert first.range is not None and first.status == 200
    assert all(verify(HD, tmp_path).values())
    assert not part.exists()


def test_complete_part_is_accepted_on_416(tmp_path: Path, mirror) -> None:
    part = tmp_path / HD / (CLEVELAND + ".part")
    part.parent.mkdir(parents=True)
    shutil.copyfile(SHARED / HD / CLEVELAND, part)
    fetch(HD, tmp_path, mirror=mirror, progress=False)
    assert [s.status for s in mirror.requests if s.path.endswith(CLEVELAND)] == [416]
    assert all(verify(HD, tmp_path).values())


def test_checksum_mismatch(tmp_path: Path, mirror) -> None:
    folder = tmp_path / HD
    folder.mkdir()
    good = folder / CLEVELAND
    shutil.copyfile(SHARED / HD / CLEVELAND, good)
    os.utime(good, (1_000_000, 1_000_000))
    mirror.corrupt.add(HUNGARIAN)

    with pytest.raises(ChecksumError) as info:
        fetch(HD, tmp_path, mirror=mirror, progress=False)
    text = info.value.message
    assert HUNGARIAN in text and SOURCES[HD][1].md5 in text and "got" in text and "fix:" in text
    assert not (folder / HUNGARIAN).exists()
    assert not list(folder.glob("*.part"))
    assert good.stat().st_mtime == 1_000_000 and md5(good) == SOURCES[HD][0].md5
    assert not any(s.path.endswith(CLEVELAND) for s in mirror.requests)  # good file: not re-fetched

    # A stale copy already in place is left as it was when the replacement is corrupted too.
    (folder / HUNGARIAN).write_bytes(b"stale")
    with pytest.raises(ChecksumError):
        fetch(HD, tmp_path, mirror=mirror, progress=False)
    assert (folder / HUNGARIAN).read_bytes() == b"stale"
    assert not list(folder.glob("*.part"))

    mirror.corrupt.clear()
    fetch(HD, tmp_path, mirror=mirror, progress=False)
    assert all(verify(HD, tmp_path).values())


def test_network_error_names_url(tmp_path: Path, mirror) -> None:
    with pytest.raises(DataError) as info:
        fetch(HD, tmp_path, mirror=f"{mirror}/nowhere", progress=False)
    assert f"{mirror}/nowhere/{HD}/{CLEVELAND}" in info.value.message and "404" in info.value.message
    assert not list((tmp_path / HD).iterdir())


def test_local_folder_as_mirror(tmp_path: Path) -> None:
    fetch(HD, tmp_path, mirror=str(SHARED), progress=False)
    assert all(verify(HD, tmp_path).values())


def test_unknown_profile() -> None:
    for call in (require, verify, fetch):
        with pytest.raises(ConfigError) as info:
            call("nope")
        assert "heart_disease" in info.value.message and "tcga_brca" in info.value.message


def test_default_data_dir(tmp_path: Path) -> None:
    assert profile_dir(HD) == tmp_path / "default" / HD
    assert verify(HD) == {f.filename: False for f in SOURCES[HD]}


def test_cli_errors_and_fetch(tmp_path: Path, mirror, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "nope"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.splitlines()[0]]
    assert "nope" in err and "Traceback" not in err

    argv = ["data", "fetch", HD, "--data-dir", str(tmp_path), "--mirror", mirror, "--no-progress"]
    assert main(argv) == 0
    assert str(tmp_path / HD) in capsys.readouterr().out
    assert main(["data", "verify", HD, "--data-dir", str(tmp_path)]) == 0
    (tmp_path / HD / CLEVELAND).write_bytes(b"broken")
    assert main(["data", "verify", HD, "--data-dir", str(tmp_path)]) == 1
    assert "BAD md5" in capsys.readouterr().out


def test_cli_path_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "AFR_DATA_DIR": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "afr.cli", "data", "path", HD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / HD)
