"""LEAF Sent140, CelebA and Reddit on generated fixtures in the upstream formats: raw files -> prepare
-> loader -> model forward/backward -> loss/metric (hand-checked), fetch through a 127.0.0.1 server
(checksum mismatch, interrupted and resumed download, Google Drive's web-page answer), held-out user
groups kept out of training, and ``python -m afr.run profile=<p> budget=smoke recipe=fedavg`` on each
(sent140 as a subprocess, celeba and reddit through the same ``train_and_test`` in-process)."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from afr.data import RemoteFile
from afr.errors import ChecksumError, DataError
from afr.profiles import Profile, apply_budget, load_profile_config, make_profile
from afr.profiles._leaf import read_leaf_split
from afr.profiles._leaf_prepare import LeafFlags
from afr.profiles.celeba import fetch as prep_celeba
from afr.profiles.celeba.model import CelebaCNN
from afr.profiles.reddit import fetch as prep_reddit
from afr.profiles.reddit.dataset import IGNORE, PAD, UNK
from afr.profiles.reddit.model import RedditLSTM
from afr.profiles.sent140 import fetch as prep_sent140
from afr.profiles.sent140.dataset import split_line
from afr.profiles.sent140.model import BagOfWordsLogReg, SentimentLSTM
from afr.recipe import FedAvg
from afr.run import train_and_test
from tests._data import fetch, require
from tests._http import serve_directory
from tests.leaf_fixtures import (
    CelebaRaw,
    reddit_rows,
    write_celeba_raw,
    write_leaf_json,
    write_reddit_raw,
    write_sent140_raw,
)

REPO = Path(__file__).resolve().parents[1]
ALL_DATA = LeafFlags(sampling="niid", fraction=1.0, min_samples=3, sampling_seed=1, split_seed=2)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def _isolated_data_dir_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AFR_DATA_DIR", str(tmp_path / "default"))
    # One torch thread, as the engine runs: a busy machine makes multi-threaded LSTM calls crawl.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def profile(name: str, data_dir: Path, **overrides) -> Profile:
    cfg = load_profile_config(name)
    cfg.update(overrides)
    return make_profile(name, cfg, data_dir=data_dir)


def members(p: Profile) -> tuple[list[list[str]], list[list[str]]]:
    """Users of each training client and of each held-out group."""
    table = p.grouping_table()
    return [r["user_ids"] for r in table if not r["heldout"]], [r["user_ids"] for r in table if r["heldout"]]


# --- prepared fixtures (built once per module) ----------------------------------------------------------


@pytest.fixture(scope="module")
def sent140_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sent140")
    raw = write_sent140_raw(root / "sent140", users=64, per_user=(1, 9), seed=3)
    prep_sent140.prepare(root / "sent140", progress=False, flags=ALL_DATA)
    return root, raw


@pytest.fixture(scope="module")
def celeba_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("celeba")
    raw = write_celeba_raw(root / "celeba", celebs=40, small_celebs=3, seed=4)
    prep_celeba.prepare(root / "celeba", progress=False, flags=ALL_DATA)
    return root, raw


@pytest.fixture(scope="module")
def reddit_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("reddit")
    raw = write_reddit_raw(root / "reddit", users=48, seed=5)
    prep_reddit.prepare(root / "reddit", progress=False)
    return root, raw


# --- Sent140 --------------------------------------------------------------------------------------------


def test_sent140_tokeniser_by_hand() -> None:
    assert split_line("I can't   believe it!!! so,good;ok? #tag @you") == [
        "I", "can't", "believe", "it", "!", "!", "!", "so", ",", "good", ";", "ok", "?", "tag", "you",
    ]  # fmt: skip


def test_sent140_prepare_writes_leaf_format(sent140_dir) -> None:
    root, raw = sent140_dir
    folder = root / "sent140"
    train, test = read_leaf_split(folder / "train"), read_leaf_split(folder / "test")
    kept = {u for u, rows in raw.tweets.items() if len(rows) >= 3}
    assert set(train.users) == set(test.users) == kept  # -k 3 dropped the users with 1-2 tweets
    assert len(kept) < len(raw.tweets)
    for user in kept:
        xs = train.data[user][0] + test.data[user][0]
        ys = train.data[user][1] + test.data[user][1]
        assert len(xs) == len(raw.tweets[user]) and len(train.data[user][1]) == int(0.9 * len(xs))
        assert all(len(x) == 6 and x[3] == user for x in xs)  # [id, date, query, user, text, source]
        expected = sorted((text, 1 if pol == "4" else 0, src) for text, pol, src in raw.tweets[user])
        assert sorted((x[4], y, x[5]) for x, y in zip(xs, ys, strict=True)) == expected
    texts = [x[4] for u in kept for x in train.data[u][0] + test.data[u][0]]
    assert any('café "naïve"' in t for t in texts)  # ISO-8859-1 decoded, CSV quotes undone
    meta = json.loads((folder / "meta" / "afr_leaf.json").read_text())
    assert meta["flags"]["min_samples"] == 3 and meta["flags"]["sampling_seed"] == 1
    assert prep_sent140.is_prepared(folder)


def test_sent140_vocabulary_from_training_clients_only(sent140_dir) -> None:
    root, raw = sent140_dir
    p = profile("sent140", root)
    train = p.data("train")
    clients, held = members(p)
    assert p.num_clients == 6 and len(held) == 2 and p.vocabulary is not None
    vocab = set(p.vocabulary)
    assert all(raw.marker(u) in vocab for users in clients for u in users)
    assert not any(raw.marker(u) in vocab for users in held for u in users)
    # every training row decodes back to its tweet's tokens (all training tokens are in the vocabulary)
    leaf = read_leaf_split(root / "sent140" / "train")
    for data, users in zip(train, clients, strict=True):
        decoded = collections.Counter(
            tuple(p.vocabulary[i] for i in row if i) for row in data.inputs.tolist()
        )
        expected = collections.Counter(
            tuple(split_line(x[4])[: p.max_words]) for u in users for x in leaf.data[u][0]
        )
        assert decoded == expected
        labels = sorted(y for u in users for y in leaf.data[u][1])
        assert sorted(data.targets.tolist()) == labels and data.inputs.dtype == torch.int32
    # held-out rows: their own marker words are unknown (id 0)
    for data, users in zip(p.heldout_data(), held, strict=True):
        markers = {raw.marker(u) for u in users}
        assert not markers & {p.vocabulary[i] for i in data.inputs.flatten().tolist()}


def test_sent140_small_vocabulary_keeps_most_frequent(sent140_dir) -> None:
    root, _ = sent140_dir
    p = profile("sent140", root, vocab_size=3)
    train = p.data("train")
    clients, _ = members(p)
    leaf = read_leaf_split(root / "sent140" / "train")
    counts = collections.Counter(
        w
        for users in clients
        for u in users
        for x in leaf.data[u][0]
        for w in split_line(x[4])[: p.max_words]
    )
    top = sorted(counts, key=lambda w: (-counts[w], w))[:3]
    assert p.vocabulary == ["", *top]
    assert set(torch.cat([d.inputs for d in train]).unique().tolist()) <= {0, 1, 2, 3}


def test_sent140_models_by_hand() -> None:
    model = BagOfWordsLogReg(vocab_size=4)
    with torch.no_grad():
        model.weight.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 2.0], [3.0, 3.0], [7.0, 7.0]]))
        model.bias.copy_(torch.tensor([0.25, -0.25]))
    ids = torch.tensor([[1, 1, 2, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.int32)
    assert torch.allclose(model(ids), torch.tensor([[2.75, -0.25], [0.25, -0.25]]))  # 2 W1 + W2 + b
    out = model(ids)
    nn_loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 1]))
    nn_loss.backward()
    assert model.weight.weight.grad[0].abs().sum() == 0  # unknown / padding never learns
    lstm = SentimentLSTM(vocab_size=50, seq_len=25, hidden=100)
    # LEAF's count with TF's single LSTM bias: emb + 2 x ((100 + 100) x 400 + 400) + 100*128+128 + 128*2+2
    leaf_count = 51 * 100 + 2 * (200 * 400 + 400) + 100 * 128 + 128 + 128 * 2 + 2
    assert sum(q.numel() for q in lstm.parameters()) == leaf_count + 2 * 400  # PyTorch's second bias
    assert torch.all(lstm.lstm.bias_ih_l0[100:200] == 1.0)  # TF's forget_bias
    x = torch.randint(0, 51, (3, 64), dtype=torch.int32)
    y = lstm(x)
    assert y.shape == (3, 2)
    x2 = x.clone()
    x2[:, 25:] = 7  # only the first seq_len ids matter
    assert torch.equal(lstm(x2), y)


def test_sent140_profile_loss_metric_and_training_step(sent140_dir) -> None:
    root, _ = sent140_dir
    p = profile("sent140", root)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.0, 0.5]])
    targets = torch.tensor([0, 1, 1, 1])
    assert p.metric(logits, targets) == 0.75
    expected = -sum(torch.log_softmax(logits, 1)[i, t] for i, t in enumerate(targets.tolist())) / 4
    assert torch.isclose(p.loss(logits, targets), expected)
    fit = p.data("fit")[0]
    assert isinstance(p.build_model(), BagOfWordsLogReg)
    assert isinstance(profile("sent140", root, default_model="lstm").build_model(), SentimentLSTM)
    for variant in ("bow_logreg", "lstm"):
        model = p.build_model(variant)
        inputs, labels = p.train_batch(fit.inputs[:8], fit.targets[:8], torch.Generator())
        loss = p.loss(model(inputs), labels)
        loss.backward()
        assert math.isfinite(loss.item()) and all(q.grad is not None for q in model.parameters())
        evaluation = p.evaluate(model, p.data("val"))
        assert len(evaluation.per_client) == 6 and 0.0 <= evaluation.mean <= 1.0


def _fake_glove(folder: Path, words: list[str]) -> Path:
    fillers = [f"zz{k}" for k in range(400_000 - len(words))]
    text = "".join(f"{w} 0.1 -0.2\n" for w in [*words, *fillers])
    path = folder / "glove.6B.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("glove.6B.50d.txt", text)
    return path


def test_sent140_glove_vocabulary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sent140"
    raw = write_sent140_raw(folder, users=40, per_user=(3, 6), seed=8)
    prep_sent140.prepare(folder, progress=False, flags=ALL_DATA)
    glove = _fake_glove(folder, ["the", ".", "love", "i", "day"])
    with pytest.raises(DataError, match="checksum mismatch for glove.6B.zip"):
        prep_sent140.prepare(folder, progress=False)
    assert not (folder / "glove_vocab.txt").exists()
    monkeypatch.setattr(prep_sent140, "GLOVE_MD5", md5(glove))
    prep_sent140.prepare(folder, progress=False)
    assert (folder / "glove_vocab.txt").read_text().split("\n")[:3] == ["the", ".", "love"]
    p = profile("sent140", tmp_path)
    assert p.uses_glove and p.vocab_size == 400_000
    assert p.build_model().weight.weight.shape == (400_001, 2)
    train = p.data("train")
    ids = torch.cat([d.inputs for d in train]).unique().tolist()
    assert set(ids) <= {0, 1, 2, 3, 4, 5}  # LEAF's GloVe index + 1; every other word unknown (0)
    assert raw.marker("User_00") not in p.vocabulary[:6]
    # without the extracted list the vocabulary is read from the zip itself
    (folder / "glove_vocab.txt").unlink()
    again = profile("sent140", tmp_path)
    assert torch.equal(again.data("train")[0].inputs, train[0].inputs)
    forced = profile("sent140", tmp_path, vocabulary="train")
    assert not forced.uses_glove and forced.vocab_size == 10_000


# --- CelebA ------------------------------------------------------------------------------------------------


def test_celeba_prepare_writes_leaf_format(celeba_dir) -> None:
    root, raw = celeba_dir
    folder = root / "celeba"
    train, test = read_leaf_split(folder / "train"), read_leaf_split(folder / "test")
    kept = {c for c, images in raw.images.items() if len(images) >= 5}
    assert set(train.users) == kept and len(kept) == 40  # the 3 celebrities with < 5 images are gone
    for celeb in kept:
        pairs = list(
            zip(
                train.data[celeb][0] + test.data[celeb][0],
                train.data[celeb][1] + test.data[celeb][1],
                strict=True,
            )
        )
        assert sorted(pairs) == sorted((f, float(s)) for f, s in raw.images[celeb])
        assert all(isinstance(y, float) for _, y in pairs)  # LEAF's (Smiling + 1) / 2
    assert prep_celeba.is_prepared(folder)


def _celeb_of(image: torch.Tensor, colours: dict[tuple[int, int, int], str]) -> str:
    mean = tuple(int(round(v)) for v in image.float().mean(dim=(1, 2)).tolist())
    matches = [
        c for rgb, c in colours.items() if max(abs(a - b) for a, b in zip(rgb, mean, strict=True)) <= 4
    ]
    assert len(matches) == 1, (mean, matches)
    return matches[0]


def test_celeba_images_and_heldout_groups(celeba_dir) -> None:
    root, raw = celeba_dir
    p = profile("celeba", root)
    colours = {CelebaRaw.colour(c): c for c in raw.images if len(raw.images[c]) >= 5}
    assert len(colours) == 40  # distinct colours: every image can be traced to its celebrity
    clients, held = members(p)
    train, test = p.data("train"), p.data("test")
    for data, users in [*zip(train, clients, strict=True), *zip(test, clients, strict=True)]:
        assert data.inputs.dtype == torch.uint8 and data.inputs.shape[1:] == (3, 84, 84)
        assert {_celeb_of(img, colours) for img in data.inputs} <= set(users)
    held_users = {u for users in held for u in users}
    for part in ("fit", "val", "train", "test"):
        for data in p.data(part):
            assert not {_celeb_of(img, colours) for img in data.inputs} & held_users
    for data, users in zip(p.heldout_data(), held, strict=True):
        assert {_celeb_of(img, colours) for img in data.inputs} == set(users)
        assert len(data) == sum(len(raw.images[u]) for u in users)  # all their train + test images
    # labels follow the attribute list
    smiling = {f: s for images in raw.images.values() for f, s in images}
    leaf = read_leaf_split(root / "celeba" / "train")
    assert sorted(train[0].targets.tolist()) == sorted(
        smiling[f] for u in clients[0] for f in leaf.data[u][0]
    )


def test_celeba_reads_folder_like_zip(tmp_path: Path) -> None:
    zipped = write_celeba_raw(tmp_path / "a" / "celeba", celebs=12, seed=6)
    write_celeba_raw(tmp_path / "b" / "celeba", celebs=12, seed=6, zipped=False)
    for sub in ("a", "b"):
        prep_celeba.prepare(tmp_path / sub / "celeba", progress=False, flags=ALL_DATA)
    grouping = {"rule": "hash", "clients": 2, "heldout_groups": 1}
    a = profile("celeba", tmp_path / "a", grouping=grouping).data("train")
    b = profile("celeba", tmp_path / "b", grouping=grouping).data("train")
    assert all(torch.equal(x.inputs, y.inputs) for x, y in zip(a, b, strict=True))
    assert zipped.images  # and the zip was never extracted
    assert not (tmp_path / "a" / "celeba" / "img_align_celeba").exists()


def test_celeba_missing_image_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "celeba"
    write_celeba_raw(folder, celebs=3, seed=2)
    prep_celeba.prepare(folder, progress=False, flags=ALL_DATA)
    with zipfile.ZipFile(folder / "img_align_celeba.zip") as zf:
        names = zf.namelist()
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as zf:  # drop the first image
        for name in names[1:]:
            zf.writestr(name, b"")
    with pytest.raises(DataError, match=names[0].rsplit("/", 1)[-1]):
        profile("celeba", tmp_path, grouping={"rule": "hash", "clients": 1, "heldout_groups": 0}).data(
            "train"
        )
    (folder / "img_align_celeba.zip").unlink()
    assert not prep_celeba.is_prepared(folder)
    with pytest.raises(DataError, match="afr data fetch celeba"):
        profile("celeba", tmp_path).data("train")


def test_celeba_model_and_transforms(celeba_dir) -> None:
    root, _ = celeba_dir
    p = profile("celeba", root)
    model = p.build_model()
    assert isinstance(model, CelebaCNN)
    assert sum(q.numel() for q in model.parameters()) == 31_202  # LEAF's count
    assert not list(model.buffers())  # batch statistics always, as LEAF's training=True BatchNorm
    shapes = []
    x = torch.zeros(2, 3, 84, 84)
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, torch.nn.MaxPool2d):
            shapes.append(x.shape[-1])
    assert shapes == [42, 21, 11, 6]
    fit = p.data("fit")[0]
    inputs, targets = p.train_batch(fit.inputs[:4], fit.targets[:4], torch.Generator())
    assert inputs.dtype == torch.float32 and float(inputs.max()) > 1.0  # raw 0-255, LEAF keeps them
    assert torch.equal(p.eval_inputs(fit.inputs[:4]), inputs)
    loss = p.loss(model(inputs), targets)
    loss.backward()
    assert math.isfinite(loss.item())
    logits = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert p.metric(logits, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)


# --- Reddit ------------------------------------------------------------------------------------------------


def test_reddit_prepare_extracts_and_fixes_counts(reddit_dir) -> None:
    root, raw = reddit_dir
    folder = root / "reddit"
    for split in ("train", "val", "test"):
        doc = json.loads((folder / split / f"{split}_data.json").read_text())
        assert doc["num_samples"] == [len(doc["user_data"][u]["y"]) for u in doc["users"]]
        assert set(doc["users"]) == set(raw.comments[split])
    with zipfile.ZipFile(raw.path) as zf:  # the upstream file keeps LEAF's all-splits counts
        upstream = json.loads(zf.read("new_small_data/train_data.json"))
    assert upstream["num_samples"] != [len(upstream["user_data"][u]["y"]) for u in upstream["users"]]
    assert prep_reddit.is_prepared(folder)


def _decode(p, rows: torch.Tensor) -> list[list[str]]:
    return [[p.vocabulary[i] for i in row] for row in rows.tolist()]


def test_reddit_rows_vocabulary_and_heldout(reddit_dir) -> None:
    root, raw = reddit_dir
    p = profile("reddit", root)
    train, test = p.data("train"), p.data("test")
    clients, held = members(p)
    assert p.vocabulary[:2] == ["<PAD>", "<UNK>"] and len(p.vocabulary) <= p.vocab_size
    vocab = set(p.vocabulary)
    assert all(f"w{int(u) - 1}" in vocab for users in clients for u in users)
    assert not any(f"w{int(u) - 1}" in vocab for users in held for u in users)
    for data, users in zip(train, clients, strict=True):
        expected_inputs, expected_targets = [], []
        for u in users:
            for comment in raw.comments["train"][u]:
                rows, targets, masks = reddit_rows(comment)
                expected_inputs += rows
                expected_targets += [
                    [t if m else None for t, m in zip(tr, mr, strict=True)]
                    for tr, mr in zip(targets, masks, strict=True)
                ]
        assert _decode(p, data.inputs) == expected_inputs
        got_targets = [
            [None if t == IGNORE else p.vocabulary[t] for t in row] for row in data.targets.tolist()
        ]
        assert got_targets == expected_targets
        assert data.inputs.shape[1] == 10 and data.targets.dtype == torch.int64

    # each held-out group keeps exactly its users' train + test rows, and no training part holds them
    def rows_of(users: list[str]) -> int:
        return sum(
            len(reddit_rows(c)[0]) for u in users for s in ("train", "test") for c in raw.comments[s][u]
        )

    assert [len(d) for d in p.heldout_data()] == [rows_of(users) for users in held]
    assert [len(tr) + len(te) for tr, te in zip(train, test, strict=True)] == [rows_of(u) for u in clients]


def test_reddit_small_vocabulary_maps_rare_tokens_to_unk(reddit_dir) -> None:
    root, raw = reddit_dir
    p = profile("reddit", root, vocab_size=5)
    train = p.data("train")
    clients, _ = members(p)
    counts = collections.Counter(
        token
        for users in clients
        for u in users
        for comment in raw.comments["train"][u]
        for row in reddit_rows(comment)[0]
        for token in row
        if token != "<PAD>"
    )
    top = sorted(counts, key=lambda t: (-counts[t], t))[:3]
    assert p.vocabulary == ["<PAD>", "<UNK>", *top]
    inputs = torch.cat([d.inputs for d in train])
    assert set(inputs.unique().tolist()) == {PAD, UNK, 2, 3, 4}


def test_reddit_loss_and_metric_by_hand(reddit_dir) -> None:
    root, _ = reddit_dir
    p = profile("reddit", root, vocab_size=6, embedding_dim=4, hidden=4)
    # 1 row of 4 positions (the metric works on any sequence length): targets 3, PAD, UNK, masked
    targets = torch.tensor([[3, PAD, UNK, IGNORE]])
    predicted = torch.tensor([[3, PAD, UNK, 5]])  # right, right but PAD, right but UNK, masked
    assert p.metric(predicted, targets) == 1 / 3
    logits = torch.nn.functional.one_hot(predicted, 6).float() * 5.0
    assert p.metric(logits, targets) == 1 / 3
    log_probs = torch.log_softmax(logits, dim=-1)[0]
    expected = -(log_probs[0, 3] + log_probs[1, PAD] + log_probs[2, UNK]) / 3
    assert torch.isclose(p.loss(logits, targets), expected)
    assert math.isnan(p.metric(predicted, torch.full((1, 4), IGNORE)))
    model = p.build_model()
    assert isinstance(model, RedditLSTM)
    fit = p.data("fit")[0]
    out = model(fit.inputs[:3])
    assert out.shape == (3, 10, 6)
    p.loss(out, fit.targets[:3]).backward()
    evaluation = p.evaluate(model, p.data("val"))  # through the arg-max wrapper
    assert all(0.0 <= v <= 1.0 for v in evaluation.per_client)
    full = RedditLSTM()
    assert sum(q.numel() for q in full.parameters()) == 6_180_624 + 2 * 1024  # LEAF + PyTorch's 2nd bias
    assert all(float(q.detach().abs().max()) <= 0.1 + 1e-6 for q in full.parameters())  # U(-0.1, 0.1)


def test_reddit_web_page_instead_of_zip(tmp_path: Path) -> None:
    folder = tmp_path / "reddit"
    folder.mkdir()
    (folder / "reddit_subsampled.zip").write_text("<!DOCTYPE html><html><title>Google Drive - quota</title>")
    (folder / ".afr-md5.json").write_text(json.dumps({"reddit_subsampled.zip": "0" * 32, "other": "1" * 32}))
    with pytest.raises(DataError) as info:
        prep_reddit.prepare(folder, progress=False)
    message = info.value.message
    assert "web page" in message and prep_reddit.DRIVE_ID in message and str(folder) in message
    assert not (folder / "reddit_subsampled.zip").exists()
    assert json.loads((folder / ".afr-md5.json").read_text()) == {"other": "1" * 32}


# --- fetch through a 127.0.0.1 server --------------------------------------------------------------------


def _pin(monkeypatch: pytest.MonkeyPatch, module, folder: Path) -> None:
    """Point the fetch module's SOURCE at the fixture files' md5s (same names and URLs)."""
    files = tuple(RemoteFile(f.filename, f.url, md5(folder / f.filename)) for f in module.FILES)
    monkeypatch.setattr(module, "SOURCE", replace(module.SOURCE, files=files))


def test_fetch_sent140_checksum_resume_and_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "mirror"
    write_sent140_raw(served / "sent140", users=30, per_user=(3, 8), seed=9)
    _pin(monkeypatch, prep_sent140, served / "sent140")
    monkeypatch.setattr(prep_sent140, "DEFAULT_FLAGS", ALL_DATA)
    data = tmp_path / "data"
    with serve_directory(served) as url:
        url.corrupt.add("trainingandtestdata.zip")
        with pytest.raises(ChecksumError, match="checksum mismatch"):
            fetch("sent140", data, mirror=url, progress=False)
        assert not list((data / "sent140").iterdir())  # the bad copy is gone, nothing prepared
        url.corrupt.clear()
        url.fail_after_bytes["trainingandtestdata.zip"] = 1000
        with pytest.raises(DataError, match="resumed"):
            fetch("sent140", data, mirror=url, progress=False)
        assert (data / "sent140" / "trainingandtestdata.zip.part").stat().st_size == 1000
        url.fail_after_bytes.clear()
        fetch("sent140", data, mirror=url, progress=False)
        assert url.requests[-1].range == "bytes=1000-" and url.requests[-1].status == 206
        assert require("sent140", data) == data / "sent140"
        seen = len(url.requests)
        fetch("sent140", data, mirror=url, progress=False)  # prepared: nothing downloaded again
        assert len(url.requests) == seen
    p = profile("sent140", data, grouping={"rule": "hash", "clients": 3, "heldout_groups": 1})
    assert sum(len(d) for d in p.data("train")) > 0


def test_fetch_celeba_and_reddit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "mirror"
    write_celeba_raw(served / "celeba", celebs=10, seed=1)
    write_reddit_raw(served / "reddit", users=6, seed=2)
    _pin(monkeypatch, prep_celeba, served / "celeba")
    monkeypatch.setattr(prep_celeba, "DEFAULT_FLAGS", ALL_DATA)
    data = tmp_path / "data"
    with pytest.raises(DataError, match="afr data fetch celeba"):
        require("celeba", data)
    with serve_directory(served) as url:
        fetch("celeba", data, mirror=url, progress=False)
        assert prep_celeba.is_prepared(data / "celeba")
        fetch("reddit", data, mirror=url, progress=False)  # no published md5: recorded at first download
        recorded = json.loads((data / "reddit" / ".afr-md5.json").read_text())
        assert recorded == {"reddit_subsampled.zip": md5(served / "reddit" / "reddit_subsampled.zip")}
        assert require("reddit", data) == data / "reddit"
        # Google Drive answering with a web page: one clear error, the bad file and its md5 forgotten
        (served / "reddit" / "reddit_subsampled.zip").write_text("<html><body>quota exceeded</body></html>")
        with pytest.raises(DataError, match="web page"):
            fetch("reddit", tmp_path / "other", mirror=url, progress=False)
        assert not (tmp_path / "other" / "reddit" / "reddit_subsampled.zip").exists()
        assert "reddit_subsampled.zip" not in json.loads(
            (tmp_path / "other" / "reddit" / ".afr-md5.json").read_text()
        )


def test_preprocessed_leaf_json_is_accepted_as_is(tmp_path: Path) -> None:
    folder = tmp_path / "sent140"
    users = {
        f"u{k}": {
            "x": [[str(i), "date", "NO_QUERY", f"u{k}", f"hello world {k} !", "training"] for i in range(3)],
            "y": [k % 2, 1, 0],
        }
        for k in range(12)
    }
    write_leaf_json(folder / "train" / "all_data_niid_05_keep_3_train_9.json", users)
    test_users = {u: {"x": d["x"][:1], "y": d["y"][:1]} for u, d in users.items()}
    write_leaf_json(folder / "test" / "all_data_niid_05_keep_3_test_9.json", test_users)
    assert prep_sent140.is_prepared(folder)
    with serve_directory(tmp_path / "nothing") as url:
        fetch("sent140", tmp_path, mirror=url, progress=False)
        assert url.requests == []  # nothing downloaded, nothing rewritten
    p = profile("sent140", tmp_path, grouping={"rule": "hash", "clients": 2, "heldout_groups": 1})
    rows = [len(d) for part in ("train", "test") for d in p.data(part)] + [len(d) for d in p.heldout_data()]
    assert sum(rows) == 12 * 4
    # a malformed label is one error naming the file and the user
    users["u3"]["y"][0] = 2
    write_leaf_json(folder / "train" / "all_data_niid_05_keep_3_train_9.json", users)
    with pytest.raises(DataError) as info:
        profile("sent140", tmp_path).data("train")
    assert "all_data_niid_05_keep_3_train_9.json" in info.value.message and "'u3'" in info.value.message


# --- python -m afr.run on each profile --------------------------------------------------------------------


def _check_results(name: str, results: dict) -> None:
    smoke = apply_budget(load_profile_config(name), "smoke")
    assert results["budget"] == {k: smoke[k] for k in ("rounds", "local_steps", "batch_size")}
    assert results["profile"] == name and results["recipe"] == "fedavg"
    assert len(results["seeds"]) == 1 and math.isfinite(results["mean"]) and 0.0 <= results["mean"] <= 1.0
    assert len(results["seeds"][0]["test_per_client"]) == smoke["grouping"]["clients"]
    assert (
        results["seeds"][0]["steps"] == smoke["rounds"] * smoke["grouping"]["clients"] * smoke["local_steps"]
    )


def test_cli_subprocess_sent140(sent140_dir, tmp_path: Path) -> None:
    root, _ = sent140_dir
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    args = [
        "profile=sent140", "budget=smoke", "recipe=fedavg", "seeds=1", f"data_dir={root}",
        f"hydra.run.dir={tmp_path / 'run'}", "tensorboard=false",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "afr.run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "sent140 / fedavg: test accuracy" in done.stdout
    _check_results("sent140", json.loads((tmp_path / "run" / "results.json").read_text()))


@pytest.mark.parametrize("name", ["celeba", "reddit"])
def test_cli_in_process(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    root, _ = request.getfixturevalue(f"{name}_dir")
    overrides = [f"profile={name}", "budget=smoke", "recipe=fedavg", "seeds=1", f"data_dir={root}"]
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    _check_results(name, train_and_test(cfg, tmp_path))
    assert (tmp_path / "results.json").is_file()


def test_configs_and_presets_are_well_formed() -> None:
    for name in ("sent140", "celeba", "reddit"):
        cfg = load_profile_config(name)
        assert cfg["grouping"]["rule"] == "hash" and cfg["heldout"] == {"kind": "heldout_clients"}
        for preset in ("smoke", "cpu"):
            p = make_profile(name, apply_budget(cfg, preset))
            assert p.budget.rounds <= cfg["rounds"] and p.heldout_settings() == {"heldout_clients": {}}
            assert p.heldout_clients and p.for_campaign() is p  # held out in every run, not only campaigns
    reddit_cpu = make_profile("reddit", apply_budget(load_profile_config("reddit"), "cpu"))
    assert reddit_cpu.build_model().embedding.weight.shape == (2000, 64)
    # LEAF's learning rates are the FedAvg defaults, inside each profile's search range
    for name, lr in (("sent140", 3.0e-4), ("celeba", 0.1), ("reddit", 5.65)):
        assert make_profile(name).make_recipe(FedAvg).scalar_values()["lr"] == lr
