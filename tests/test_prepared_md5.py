"""Prepared data is md5-checked before training, like downloaded files.

A preparation step (our LEAF pipeline for femnist and shakespeare; any ``afr data fetch`` with a prepare step)
records the md5 of every file it wrote in ``<folder>/.afr-prepared-md5.json``; ``require`` holds the files
to it before each load, through the md5 cache. A tampered, missing or added prepared file stops a run -- a
single run and a campaign, as a user starts them -- with one line, before anything is trained. Where the data
folder is read-only the manifest goes to the user cache. A layout placed by hand (the shared LEAF subsets) has
no manifest: its layout check is all there is, and nothing is written next to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from afr.data import PREPARED_MANIFEST
from afr.data._manifest import user_record_path
from afr.errors import DataError
from afr.profiles.femnist import fetch as femnist_prep
from afr.profiles.shakespeare import fetch as shakespeare_prep
from tests import _data
from tests.test_environment_errors import needs_unshare
from tests.test_leaf_prepare import ALL_DATA, gutenberg_zip, make_nist_zips

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The md5 cache and any manifest kept there go to the user cache folder: keep them out of the real one.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def shakespeare(tmp_path: Path) -> Path:
    """``<tmp>/data/shakespeare`` prepared by our pipeline from a tiny Gutenberg-layout text."""
    folder = tmp_path / "data" / "shakespeare"
    gutenberg_zip(folder)
    shakespeare_prep.prepare(folder, progress=False, flags=ALL_DATA)
    return folder


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def tamper(path: Path) -> None:
    """One byte changed, same size (a gzip file stays a file of the same name and length)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "\n  fix: " in done.stderr, output
    return errors[0]


def afr_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "afr.run", *args, "hydra.run.dir=hydra"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_leaf_preparation_records_the_md5_of_every_file_it_wrote(tmp_path: Path, shakespeare: Path) -> None:
    femnist = tmp_path / "data" / "femnist"
    make_nist_zips(femnist)
    femnist_prep.prepare(femnist, progress=False, flags=ALL_DATA)
    for folder, downloads in (
        (shakespeare, {"1994-01-100.zip"}),
        (femnist, {"by_class.zip", "by_write.zip"}),
    ):
        record = json.loads((folder / PREPARED_MANIFEST).read_text())
        written = {
            p.relative_to(folder).as_posix(): md5(p)
            for sub in ("train", "test", "meta")
            for p in (folder / sub).rglob("*")
            if p.is_file()
        }
        assert record["files"] == written, "every prepared file, with its md5, and nothing else"
        assert not downloads & set(record["files"]), "downloads have md5s of their own"
        assert any(name.startswith("train/") for name in written) and "meta/afr_leaf.json" in written
        assert _data.require(folder.name, folder.parent) == folder


def test_tampered_prepared_file_stops_a_single_run_before_training(tmp_path: Path, shakespeare: Path) -> None:
    (train,) = sorted((shakespeare / "train").iterdir())
    tamper(train)
    done = afr_run(
        tmp_path, "profile=shakespeare", "recipe=fedavg", "seeds=1", f"data_dir={shakespeare.parent}"
    )
    assert done.returncode != 0
    line = one_error(done)
    assert f"train/{train.name}" in line and "altered or corrupted" in line and str(train) in line, line
    assert "afr data fetch shakespeare" in done.stderr and "remove meta/, test/, train/" in done.stderr
    assert "seed " not in done.stdout, "no seed was trained"


def test_tampered_prepared_file_stops_a_campaign_before_anything_starts(
    tmp_path: Path, shakespeare: Path
) -> None:
    (test_file,) = sorted((shakespeare / "test").iterdir())
    tamper(test_file)
    directory = tmp_path / "c"
    done = afr_run(
        tmp_path,
        "agent=evolve",
        "profile=shakespeare",
        f"data_dir={shakespeare.parent}",
        f"campaign.dir={directory}",
    )
    assert done.returncode != 0
    assert f"test/{test_file.name}" in one_error(done)
    assert "preflight: the baseline" not in done.stdout, "nothing ran, not even the preflight"
    assert not directory.exists(), "nothing was started"


def test_missing_or_added_prepared_file_is_refused(shakespeare: Path) -> None:
    (train,) = sorted((shakespeare / "train").iterdir())
    extra = shakespeare / "train" / "more_train.json"
    shutil.copy2(train, extra)  # a loader reads every JSON of train/: an added file changes the data
    with pytest.raises(DataError, match="was not part of the prepared data") as info:
        _data.require("shakespeare", shakespeare.parent)
    assert str(extra) in info.value.message
    extra.unlink()
    (shakespeare / "meta" / "split_seed.txt").unlink()
    with pytest.raises(DataError, match=r"meta/split_seed.txt of profile 'shakespeare' is missing"):
        _data.require("shakespeare", shakespeare.parent)


def test_prepared_md5s_are_cached(shakespeare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked on every load, hashed only when a file's identity (size, mtime, ctime, inode) changes."""
    import afr.data._md5 as fetch_module

    _data.require("shakespeare", shakespeare.parent)  # fills the cache (the preparation did already)
    hashed: list[Path] = []
    real = fetch_module.file_md5
    monkeypatch.setattr(fetch_module, "file_md5", lambda p: hashed.append(p) or real(p))
    _data.require("shakespeare", shakespeare.parent)
    assert hashed == [], "unchanged files are not read again"
    (train,) = sorted((shakespeare / "train").iterdir())
    tamper(train)
    with pytest.raises(DataError, match="altered"):
        _data.require("shakespeare", shakespeare.parent)
    assert hashed == [train.resolve()], "only the changed file is hashed again"
    results = _data.verify("shakespeare", shakespeare.parent)  # `afr data verify` lists the prepared files
    assert results[f"train/{train.name}"] is False and results["meta/afr_leaf.json"] is True


@needs_unshare
def test_read_only_folder_keeps_its_manifest_in_the_user_cache(tmp_path: Path, shakespeare: Path) -> None:
    """Preparing into a folder that refuses the manifest (a read-only bind mount, so root is refused too):
    the manifest goes to the user cache, and a tampered file is caught through it."""
    (shakespeare / PREPARED_MANIFEST).unlink()
    cache = tmp_path / "xdg-cache"
    script = (
        f"mount --bind {shakespeare} {shakespeare} && mount -o remount,bind,ro {shakespeare} && "
        f"{sys.executable} -c 'import sys, afr.data; print(afr.data.record_prepared(sys.argv[1]))' "
        f"{shakespeare}"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == user_record_path(shakespeare) and str(cache) in done.stdout
    assert not (shakespeare / PREPARED_MANIFEST).exists()
    _data.require("shakespeare", shakespeare.parent)
    (train,) = sorted((shakespeare / "train").iterdir())
    tamper(train)
    with pytest.raises(DataError, match="altered") as info:
        _data.require("shakespeare", shakespeare.parent)
    assert str(user_record_path(shakespeare)) in info.value.message


@pytest.mark.parametrize("name", ["femnist", "shakespeare"])
def test_shared_leaf_subsets_keep_their_layout_check_and_stay_untouched(name: str, shared_data: Path) -> None:
    """The shared subsets were placed by hand (LEAF's own JSON, not prepared by AFR): no manifest to hold
    them to, and checking them writes nothing there (the folder is read-only and shared)."""
    folder = shared_data / name
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert _data.require(name, shared_data) == folder
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
    assert not (folder / PREPARED_MANIFEST).exists() and not user_record_path(folder).exists()
