"""LEAF preprocessing: the sampling / filter / split steps, the atomic writer and pipeline, our FEMNIST
pipeline on tiny NIST-layout zips, our Shakespeare parser on a tiny Gutenberg-layout text, and
``afr data fetch`` through a 127.0.0.1 server (checksum mismatch, interrupted download resumed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from afr.data import RemoteFile
from afr.errors import ChecksumError, ConfigError, DataError
from afr.profiles import _leaf_prepare as steps
from afr.profiles import apply_budget
from afr.profiles._leaf import read_leaf_split
from afr.profiles._leaf_prepare import LeafFlags, run_leaf_pipeline, write_leaf_json
from afr.profiles.femnist import Femnist
from afr.profiles.femnist import fetch as femnist_prep
from afr.profiles.shakespeare import Shakespeare
from afr.profiles.shakespeare import fetch as shakespeare_prep
from afr.profiles.shakespeare.dataset import ALL_LETTERS
from tests._data import fetch, require
from tests._http import serve_directory

ROOT = Path(__file__).resolve().parents[1]
ALL_DATA = LeafFlags(sampling=None, min_samples=0, split="sample", train_fraction=0.5, split_seed=3)


def chunk_of(sizes: dict[str, int], hierarchies: bool = False) -> dict:
    users = list(sizes)
    out = {
        "users": users,
        "num_samples": [sizes[u] for u in users],
        "user_data": {
            u: {"x": [f"{u}:{i}" for i in range(n)], "y": list(range(n))} for u, n in sizes.items()
        },
    }
    if hierarchies:
        out["hierarchies"] = [f"play_{u}" for u in users]
    return out


def profile_cfg(name: str, **overrides) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "afr" / "conf" / "profile" / f"{name}.yaml"))
    cfg = apply_budget(cfg, "smoke")
    cfg.update(overrides)
    return cfg


# --- the LEAF steps -------------------------------------------------------------------------------------


def test_niid_sampling_takes_whole_users_then_cuts_the_last() -> None:
    chunk = chunk_of({f"u{i}": n for i, n in enumerate([30, 5, 12, 40, 8, 25])}, hierarchies=True)
    total = 120
    out = steps.sample_niid(chunk, 0.25, np.random.default_rng(7))
    assert sum(out["num_samples"]) == int(0.25 * total) == 30
    kept = out["users"]
    full = [u for u in kept if len(out["user_data"][u]["y"]) == len(chunk["user_data"][u]["y"])]
    assert len(full) >= len(kept) - 1  # all but possibly the last user are whole
    last = out["user_data"][kept[-1]]
    assert set(last["x"]) <= set(chunk["user_data"][kept[-1]]["x"])
    assert last["y"] == sorted(last["y"])  # a cut user keeps its samples in order
    assert out["hierarchies"] == [f"play_{u}" for u in kept]
    again = steps.sample_niid(chunk, 0.25, np.random.default_rng(7))
    assert again == out
    others = {tuple(steps.sample_niid(chunk, 0.25, np.random.default_rng(s))["users"]) for s in range(8)}
    assert len(others) > 1  # the seed matters


def test_iid_sampling_pools_and_deals_samples() -> None:
    chunk = chunk_of({f"u{i}": 20 for i in range(10)})
    out = steps.sample_iid(chunk, 0.5, 0.3, np.random.default_rng(0), first_id=4)
    assert out["users"] == ["4", "5", "6"]
    assert out["num_samples"] == [34, 33, 33]
    xs = [x for u in out["users"] for x in out["user_data"][u]["x"]]
    assert len(set(xs)) == 100  # drawn without replacement from the pooled 200
    assert "hierarchies" not in out


def test_min_samples_filter() -> None:
    chunk = chunk_of({"a": 3, "b": 10, "c": 9, "d": 10}, hierarchies=True)
    out = steps.filter_min_samples(chunk, 10)
    assert out["users"] == ["b", "d"] and out["hierarchies"] == ["play_b", "play_d"]


def test_sample_split_counts_and_disjointness() -> None:
    chunk = chunk_of({"one": 1, "two": 2, "ten": 10, "big": 33})
    train, test = steps.split_sample(chunk, 0.9, np.random.default_rng(1))
    assert train["users"] == test["users"] == ["two", "ten", "big"]  # a 1-sample user cannot be split
    assert train["num_samples"] == [1, 9, 29] and test["num_samples"] == [1, 1, 4]  # max(1, floor(0.9 n))
    for user in train["users"]:
        a, b = set(train["user_data"][user]["x"]), set(test["user_data"][user]["x"])
        assert not a & b and a | b == set(chunk["user_data"][user]["x"])
    # random indices: over users, the training part is not always the first n_train samples
    assert train["user_data"]["big"]["y"] != list(range(29))


def test_shakespeare_split_leaves_a_gap_of_79_windows() -> None:
    chunk = chunk_of({"short": 85, "long": 1000})
    train, test = steps.split_sample(chunk, 0.9, np.random.default_rng(1), sequence_overlap=80)
    # short: n_train = 76, test would start at 155 > 85 -> dropped
    assert train["users"] == ["long"]
    assert train["user_data"]["long"]["y"] == list(range(900))
    assert test["user_data"]["long"]["y"] == list(range(979, 1000))


def test_user_split() -> None:
    chunk = chunk_of({f"u{i}": 3 for i in range(10)}, hierarchies=True)
    train, test = steps.split_user(chunk, 0.7, np.random.default_rng(0))
    assert len(train["users"]) == 7 and len(test["users"]) == 3
    assert sorted(train["users"] + test["users"]) == sorted(chunk["users"])
    assert train["hierarchies"] == [f"play_{u}" for u in train["users"]]


def test_write_leaf_json_round_trip_and_atomic(tmp_path: Path) -> None:
    users = ["a", "b"]
    data = {"a": {"x": [[0.5, 1.0]], "y": [3]}, "b": {"x": [[0.0, 0.25], [1.0, 1.0]], "y": [1, 2]}}
    write_leaf_json(tmp_path / "s" / "one.json.gz", users, data, ["p", "q"])
    write_leaf_json(tmp_path / "s" / "two.json", ["c"], {"c": {"x": [[1.0, 0.0]], "y": [0]}})
    with gzip.open(tmp_path / "s" / "one.json.gz", "rt") as fh:
        raw = json.load(fh)
    assert raw["num_samples"] == [1, 2] and raw["hierarchies"] == ["p", "q"]
    split = read_leaf_split(tmp_path / "s")
    assert split.users == ["a", "b", "c"] and split.data["b"] == (data["b"]["x"], data["b"]["y"])
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["one.json.gz", "two.json"]

    class Boom(Exception):
        pass

    class Exploding(dict):
        def __getitem__(self, key):
            if key == "b":
                raise Boom
            return super().__getitem__(key)

    with pytest.raises(Boom):
        write_leaf_json(tmp_path / "s" / "three.json", users, Exploding(data))
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["one.json.gz", "two.json"]


def test_pipeline_writes_layout_and_meta_or_nothing(tmp_path: Path) -> None:
    chunks = [("all_data_0", chunk_of({"a": 20, "b": 4})), ("all_data_1", chunk_of({"c": 30}))]
    flags = LeafFlags(sampling="niid", fraction=0.5, min_samples=5, train_fraction=0.8, sampling_seed=11)
    folder = tmp_path / "out"

    def broken(xs: list) -> list:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run_leaf_pipeline(chunks, folder, flags, materialize=broken)
    assert list(folder.iterdir()) == []  # no half-written train/test, no build folder left

    summary = run_leaf_pipeline(chunks, folder, flags, materialize=lambda xs: [x.upper() for x in xs])
    assert steps.leaf_layout_ready(folder)
    assert sorted(p.name for p in (folder / "train").iterdir()) == [
        "all_data_0_niid_5_keep_5_train.json.gz",
        "all_data_1_niid_5_keep_5_train.json.gz",
    ]
    assert (folder / "meta" / "sampling_seed.txt").read_text() == "11\n"
    assert (folder / "meta" / "split_seed.txt").read_text() == "0\n"
    meta = json.loads((folder / "meta" / "afr_leaf.json").read_text())
    assert meta["flags"]["fraction"] == 0.5 and meta == summary
    train = read_leaf_split(folder / "train")
    assert all(x.startswith(("A:", "B:", "C:")) for xs, _ in train.data.values() for x in xs)
    # niid per chunk: chunk 0 keeps 12 of 24 samples, chunk 1 15 of 30; -k 5 then drops users below 5
    assert summary["train_samples"] + summary["test_samples"] <= 12 + 15
    with pytest.raises(ConfigError, match="left no train data"):
        run_leaf_pipeline(chunks, tmp_path / "empty", LeafFlags(sampling=None, min_samples=1000))
    assert not steps.leaf_layout_ready(tmp_path / "empty")


# --- FEMNIST from NIST-layout zips ----------------------------------------------------------------------


def nist_png(rng: np.random.Generator, left_black: bool = False) -> bytes:
    """A 128x128 1-bit PNG like NIST's: random blots on white (or a black left half)."""
    pixels = np.ones((128, 128), dtype=bool)
    if left_black:
        pixels[:, :64] = False
    else:
        for _ in range(6):
            r, c = rng.integers(0, 112, size=2)
            pixels[r : r + 16, c : c + 16] = False
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def make_nist_zips(folder: Path, seed: int = 0) -> dict[str, list[tuple[bytes, int]]]:
    """by_class.zip / by_write.zip in NIST's layout; returns writer -> [(png, LEAF label)] as kept."""
    rng = np.random.default_rng(seed)
    classes = {"30": 0, "39": 9, "41": 10, "5a": 35, "61": 36, "7a": 61}
    writers: dict[str, list[tuple[bytes, int]]] = {}
    folder.mkdir(parents=True, exist_ok=True)
    with (
        zipfile.ZipFile(folder / "by_class.zip", "w") as by_class,
        zipfile.ZipFile(folder / "by_write.zip", "w") as by_write,
    ):
        count = 0
        for w in range(4):
            writer = f"f{w:04d}_{10 + w}"
            writers[writer] = []
            for k, (hex_code, label) in enumerate(sorted(classes.items())):
                png = nist_png(rng, left_black=(w == 0 and k == 0))
                hsf = f"hsf_{w % 2}"
                by_class.writestr(f"by_class/{hex_code}/{hsf}/{hsf}_{count:05d}.png", png)
                by_class.writestr(
                    f"by_class/{hex_code}/train_{hex_code}/train_{hex_code}_{count:05d}.png", png
                )
                by_write.writestr(f"by_write/{hsf}/{writer}/d{w:04d}_{10 + w}/d{w:04d}_{k:05d}.png", png)
                writers[writer].append((png, label))
                count += 1
            # in by_write but only in a train_* folder of by_class: LEAF drops it
            orphan = nist_png(rng)
            by_class.writestr(f"by_class/41/train_41/train_41_{count:05d}.png", orphan)
            by_write.writestr(f"by_write/hsf_0/{writer}/u{w:04d}_{10 + w}/u{w:04d}_99999.png", orphan)
            count += 1
        by_class.writestr("by_class/30/hsf_0.mit", "a list, not an image")
    return writers


def test_class_labels() -> None:
    assert [femnist_prep.class_label(h) for h in ("30", "39", "41", "5a", "61", "7a")] == [
        0,
        9,
        10,
        35,
        36,
        61,
    ]
    with pytest.raises(ValueError):
        femnist_prep.class_label("2e")


def test_femnist_prepare_from_nist_zips(tmp_path: Path) -> None:
    folder = tmp_path / "femnist"
    truth = make_nist_zips(folder)
    labels = femnist_prep.read_class_hashes(folder / "by_class.zip")
    assert len(labels) == 24  # hsf_* images only: no train_* copy, no .mit
    images = femnist_prep.read_writer_images(folder / "by_write.zip", labels)
    assert sorted(images) == sorted(truth)
    for writer, kept in images.items():
        assert [label for _, label in kept] == [label for _, label in truth[writer]]
        assert all("/d" in member for member, _ in kept)  # the orphan 'u' image is not matched

    summary = femnist_prep.prepare(folder, progress=False, flags=ALL_DATA)
    assert femnist_prep.is_prepared(folder) and summary["users"] == 4
    assert summary["train_samples"] == summary["test_samples"] == 12  # 6 images per writer, tf 0.5
    assert femnist_prep.prepare(folder, progress=False, flags=ALL_DATA) == {}  # idempotent: nothing redone
    train = read_leaf_split(folder / "train")
    test = read_leaf_split(folder / "test")
    assert sorted(train.users) == sorted(truth)
    for writer in truth:
        xs = train.data[writer][0] + test.data[writer][0]
        ys = train.data[writer][1] + test.data[writer][1]
        assert sorted(ys) == sorted(label for _, label in truth[writer])
        for x in xs:
            assert len(x) == 784 and all(abs(v * 255 - round(v * 255)) < 1e-9 for v in x)
    # the half-black image: left columns dark, right columns white, as LEAF's un-inverted floats
    first = "f0000_10"
    half = next(
        x
        for x, y in zip(
            train.data[first][0] + test.data[first][0],
            train.data[first][1] + test.data[first][1],
            strict=True,
        )
        if y == 0
    )
    grid = np.asarray(half).reshape(28, 28)
    assert grid[:, :12].max() < 0.05 and grid[:, 16:].min() > 0.95

    profile = Femnist(
        profile_cfg("femnist", grouping={"rule": "hash", "clients": 2, "heldout_groups": 0}), tmp_path
    )
    assert sum(len(c) for c in profile.data("train")) == 12


def test_femnist_prepare_bad_zip(tmp_path: Path) -> None:
    folder = tmp_path / "femnist"
    folder.mkdir()
    (folder / "by_class.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError) as info:
        femnist_prep.prepare(folder, progress=False)
    assert "by_class.zip" in info.value.message and "afr data fetch femnist" in info.value.message


# --- Shakespeare from a Gutenberg-layout text -------------------------------------------------------------


def speech(rng: np.random.Generator, words: int) -> str:
    vocab = ["love", "night", "sweet", "lord", "thee", "honour", "fair", "death", "king", "heaven"]
    return " ".join(rng.choice(vocab, size=words)) + rng.choice([".", ",", "!", "?", ";"])


def gutenberg_text(seed: int = 0) -> tuple[str, dict]:
    """A tiny 100.txt: header, sonnets, one indented play, THE COMEDY OF ERRORS (unindented)."""
    rng = np.random.default_rng(seed)
    expected: dict[str, dict[str, list[str]]] = {"THE TRAGEDY OF TESTING": {}, "THE COMEDY OF ERRORS": {}}
    lines = [
        "The Project Gutenberg Etext of the Complete Works",
        "",
        "THE SONNETS",
        "",
        "by William Shakespeare",
    ]
    lines += ["", "  1", "  From fairest creatures we desire increase,", "", "", "", "", "1603", ""]
    lines += ["THE TRAGEDY OF TESTING", "", "by William Shakespeare", "", "Dramatis Personae", ""]
    lines += ["  ALPHA, a soldier.", "  BETA, his friend.", "", "ACT I. SCENE I.", "A platform.", ""]
    play = expected["THE TRAGEDY OF TESTING"]
    for turn in range(6):
        for name in ("ALPHA", "Beta"):  # mixed case is upper-cased
            first, second = speech(rng, 12), speech(rng, 10)
            lines += [f"  {name}. {first}", f"    {second}"]
            play.setdefault(name.upper(), []).extend([first, second])
            if turn == 2 and name == "ALPHA":
                lines += ["                                                  Exit."]
        if turn < 2:  # GAMMA speaks 2 one-line speeches: dropped as a user (<= 2 lines)
            line = speech(rng, 8)
            lines += [f"  GAMMA. {line}"]
            play.setdefault("GAMMA", []).append(line)
        lines += ["", f"Enter SOLDIERS {turn}", ""]  # margin lines: discarded, speaker unchanged
    lines += ["", "", "", "THE COMEDY OF ERRORS", "", "by William Shakespeare", "", "ACT I. SCENE I.", ""]
    errors = expected["THE COMEDY OF ERRORS"]
    for _ in range(4):
        for name in ("EGEON", "DUKE SOLINUS"):
            first, second = speech(rng, 11), speech(rng, 9)
            lines += [f"{name}. {first}", second]
            errors.setdefault(name, []).extend([first, second])
        lines += ["<<THIS ELECTRONIC VERSION IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>"]
    lines += ["", "THE END"]
    return "\n".join(lines) + "\n", expected


def test_parse_plays_follows_leafs_rules() -> None:
    text, expected = gutenberg_text()
    plays = dict(shakespeare_prep.parse_plays(text))
    assert list(plays) == ["THE TRAGEDY OF TESTING", "THE COMEDY OF ERRORS"]  # sonnets skipped
    testing = plays["THE TRAGEDY OF TESTING"]
    assert sorted(testing) == ["ALPHA", "BETA", "GAMMA"]
    assert testing["BETA"] == expected["THE TRAGEDY OF TESTING"]["BETA"]
    assert len(testing["GAMMA"]) == 2
    # the indented stage direction inside ALPHA's speech is kept as ALPHA's text (LEAF does the same)
    assert any(line.strip() == "Exit." for line in testing["ALPHA"])
    errors = plays["THE COMEDY OF ERRORS"]
    assert sorted(errors) == ["DUKE SOLINUS", "EGEON"]
    # unindented speeches; the <<...>> notice ends a speech; a trailing blank line would be kept
    assert [line for line in errors["EGEON"] if line] == expected["THE COMEDY OF ERRORS"]["EGEON"]


def test_plays_to_users_and_windows() -> None:
    text, _ = gutenberg_text()
    plays = shakespeare_prep.parse_plays(text)
    data = shakespeare_prep.plays_to_all_data(plays)
    assert sorted(data["users"]) == [
        "THE_COMEDY_OF_ERRORS_DUKE_SOLINUS",
        "THE_COMEDY_OF_ERRORS_EGEON",
        "THE_TRAGEDY_OF_TESTING_ALPHA",
        "THE_TRAGEDY_OF_TESTING_BETA",
    ]  # GAMMA (2 lines) dropped
    # spaces become "_" first, then other non-word runs: LEAF's own ids read PERICLES__PRINCE_OF_TYRE_...
    assert (
        shakespeare_prep.user_id("PERICLES, PRINCE OF TYRE", "SIR TOBY")
        == "PERICLES__PRINCE_OF_TYRE_SIR_TOBY"
    )
    beta = "THE_TRAGEDY_OF_TESTING_BETA"
    lines = dict(plays)["THE TRAGEDY OF TESTING"]["BETA"]
    flat = re.sub(" {2,}", " ", " ".join(lines) + " ")
    x, y = data["user_data"][beta]["x"], data["user_data"][beta]["y"]
    assert len(x) == len(flat) - 80 and x[0] == flat[:80] and y[0] == flat[80] and x[-1] + y[-1] == flat[-81:]
    assert dict(zip(data["users"], data["hierarchies"], strict=True))[beta] == "THE TRAGEDY OF TESTING"
    windows = data["user_data"]["THE_TRAGEDY_OF_TESTING_ALPHA"]["x"]
    assert not any("  " in w or "\n" in w for w in windows)  # the indented "Exit." collapsed to one space
    assert set("".join(x) + "".join(y)) <= set(ALL_LETTERS)


def test_parse_plays_rejects_other_texts() -> None:
    with pytest.raises(DataError, match="fewer than two"):
        shakespeare_prep.parse_plays("header\nA poem.\n")


def gutenberg_zip(folder: Path) -> Path:
    text, _ = gutenberg_text()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "1994-01-100.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("100.txt", text.encode("latin-1"))
    return path


def test_shakespeare_prepare_and_load(tmp_path: Path) -> None:
    gutenberg_zip(tmp_path / "shakespeare")
    summary = shakespeare_prep.prepare(tmp_path / "shakespeare", progress=False, flags=ALL_DATA)
    assert summary["users"] == 4 and summary["sequence_overlap"] == 80
    train = read_leaf_split(tmp_path / "shakespeare" / "train")
    assert set(train.hierarchies.values()) == {"THE TRAGEDY OF TESTING", "THE COMEDY OF ERRORS"}
    profile = Shakespeare(
        profile_cfg("shakespeare", grouping={"rule": "attribute", "clients": 1, "heldout_groups": 1}),
        tmp_path,
    )
    assert [row["attributes"] for row in profile.grouping_table()] in (
        [["THE TRAGEDY OF TESTING"], ["THE COMEDY OF ERRORS"]],
        [["THE COMEDY OF ERRORS"], ["THE TRAGEDY OF TESTING"]],
    )
    assert all(len(c) > 0 for c in profile.data("train")) and len(profile.heldout_data()[0]) > 0


# --- afr data fetch through a local server ----------------------------------------------------------------


@pytest.fixture
def served_shakespeare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = gutenberg_zip(tmp_path / "mirror" / "shakespeare")
    md5 = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
    original = shakespeare_prep.FILES[0]
    files = (RemoteFile(original.filename, original.url, md5),)
    monkeypatch.setattr(shakespeare_prep, "SOURCE", replace(shakespeare_prep.SOURCE, files=files))
    monkeypatch.setattr(shakespeare_prep, "FLAGS", ALL_DATA)
    monkeypatch.setenv("AFR_DATA_DIR", str(tmp_path / "default"))
    with serve_directory(tmp_path / "mirror") as url:
        yield url, archive


def test_fetch_prepares_and_skips_prepared_data(tmp_path: Path, served_shakespeare) -> None:
    url, archive = served_shakespeare
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        require("shakespeare", data_dir)
    assert "afr data fetch shakespeare" in info.value.message
    fetch("shakespeare", data_dir, mirror=url, progress=False)
    assert require("shakespeare", data_dir) == data_dir / "shakespeare"
    assert (data_dir / "shakespeare" / "1994-01-100.zip").read_bytes() == archive.read_bytes()
    assert len(url.requests) == 1
    fetch("shakespeare", data_dir, mirror=url, progress=False)
    assert len(url.requests) == 1  # prepared: nothing downloaded again


def test_fetch_checksum_mismatch_and_resume(tmp_path: Path, served_shakespeare) -> None:
    url, archive = served_shakespeare
    data_dir = tmp_path / "data"
    folder = data_dir / "shakespeare"
    url.corrupt.add("1994-01-100.zip")
    with pytest.raises(ChecksumError) as info:
        fetch("shakespeare", data_dir, mirror=url, progress=False)
    assert "1994-01-100.zip" in info.value.message
    assert not shakespeare_prep.is_prepared(folder) and sorted(p.name for p in folder.iterdir()) == []

    url.corrupt.clear()
    cut = archive.stat().st_size // 2
    url.fail_after_bytes["1994-01-100.zip"] = cut
    with pytest.raises(DataError) as info:
        fetch("shakespeare", data_dir, mirror=url, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert (folder / "1994-01-100.zip.part").stat().st_size == cut
    assert not (folder / "train").exists()

    url.fail_after_bytes.clear()
    fetch("shakespeare", data_dir, mirror=url, progress=False)
    assert url.requests[-1].range == f"bytes={cut}-" and url.requests[-1].status == 206
    assert shakespeare_prep.is_prepared(folder) and not (folder / "1994-01-100.zip.part").exists()
    profile = Shakespeare(
        profile_cfg("shakespeare", grouping={"rule": "hash", "clients": 2, "heldout_groups": 0}), data_dir
    )
    inputs = profile.data("train")[0].inputs
    assert inputs.dtype == torch.uint8 and inputs.shape[1] == 80


@pytest.mark.parametrize("name", ["femnist", "shakespeare"])
def test_preprocessed_leaf_json_is_accepted_as_is(name: str, shared_data: Path) -> None:
    # The shipped subsets are LEAF's own JSON: fetch must not download (the mirror does not exist).
    assert fetch(name, shared_data, mirror="http://127.0.0.1:9/nowhere", progress=False) == []
    assert require(name, shared_data) == shared_data / name
