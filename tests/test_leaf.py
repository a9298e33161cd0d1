"""LEAF profiles: the LEAF JSON reader and its format errors, the grouping rule, held-out groups,
FEMNIST and Shakespeare on the shipped subsets, the reference models and a tiny FedAvg run."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from afr.engine import run_federation
from afr.errors import ConfigError, DataError
from afr.profiles import apply_budget
from afr.profiles._leaf import Grouping, read_leaf_split, stable_hash
from afr.profiles.femnist import Femnist
from afr.profiles.femnist.model import FemnistCNN
from afr.profiles.shakespeare import Shakespeare
from afr.profiles.shakespeare.dataset import ALL_LETTERS, play_of_user
from afr.profiles.shakespeare.model import CharLSTM
from afr.recipe import FedAvg

ROOT = Path(__file__).resolve().parents[1]


def write_json(path: Path, payload: dict, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def leaf_payload(users: dict[str, tuple[list, list]], hierarchies: list[str] | None = None) -> dict:
    out = {
        "users": list(users),
        "num_samples": [len(y) for _, y in users.values()],
        "user_data": {u: {"x": x, "y": y} for u, (x, y) in users.items()},
    }
    if hierarchies is not None:
        out["hierarchies"] = hierarchies
    return out


def raw_leaf(folder: Path) -> dict[str, tuple[list, list]]:
    """Every user's raw x / y of a LEAF split folder, read here without the code under test."""
    out: dict[str, tuple[list, list]] = {}
    for path in sorted(folder.iterdir()):
        with gzip.open(path, "rt") if path.name.endswith(".gz") else open(path) as fh:
            data = json.load(fh)
        for user in data["users"]:
            out[user] = (data["user_data"][user]["x"], data["user_data"][user]["y"])
    return out


def raw_user(folder: Path, user: str) -> dict[str, tuple[list, list]]:
    """The raw x / y of the LEAF file holding ``user`` (only that file is parsed)."""
    for path in sorted(folder.glob("*.json.gz")):
        with gzip.open(path, "rt") as fh:
            text = fh.read()
        if f'"{user}"' in text:
            data = json.loads(text)["user_data"][user]
            return {user: (data["x"], data["y"])}
    raise AssertionError(f"{user} not found in {folder}")


def _yaml(name: str) -> dict:
    """The shipped YAML (read directly: the profile need not be registered for these tests)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(ROOT / "afr" / "conf" / "profile" / f"{name}.yaml"))


# --- reader ----------------------------------------------------------------------------------------


def test_read_leaf_split_merges_plain_and_gzipped_files(tmp_path: Path) -> None:
    write_json(tmp_path / "a_0.json", leaf_payload({"u1": ([[1], [2]], [0, 1])}, ["play_a"]))
    write_json(tmp_path / "a_1.json.gz", leaf_payload({"u2": ([[3]], [2]), "u3": ([], [])}), gz=True)
    (tmp_path / "notes.txt").write_text("ignored")
    split = read_leaf_split(tmp_path)
    assert split.users == ["u1", "u2", "u3"]
    assert split.data["u1"] == ([[1], [2]], [0, 1]) and split.data["u2"] == ([[3]], [2])
    assert split.hierarchies == {"u1": "play_a"}
    assert split.sources == {"u1": "a_0", "u2": "a_1", "u3": "a_1"}
    assert split.num_samples == {"u1": 2, "u2": 1, "u3": 0}

    split = read_leaf_split(tmp_path, transform=lambda x, y: (len(x), sum(y)))
    assert split.data == {"u1": (2, 1), "u2": (1, 2), "u3": (0, 0)}


GOOD = {"users": ["a"], "num_samples": [1], "user_data": {"a": {"x": [[0.5]], "y": [3]}}}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "top level is a list"),
        ({"users": ["a"], "num_samples": [1]}, "missing key(s) user_data"),
        ({**GOOD, "num_samples": [1, 2]}, "1 users but 2 num_samples"),
        ({**GOOD, "num_samples": [0]}, "num_samples 0, 1 x, 1 y"),
        ({**GOOD, "num_samples": ["1"]}, "num_samples '1', 1 x, 1 y"),
        ({**GOOD, "user_data": {"a": {"x": [[0.5]], "y": [3, 4]}}}, "num_samples 1, 1 x, 2 y"),
        ({**GOOD, "user_data": {"b": {"x": [], "y": []}}}, "no x/y for user 'a'"),
        ({**GOOD, "user_data": {"a": {"x": "abc", "y": [1]}}}, "must be lists"),
        ({**GOOD, "hierarchies": ["p", "q"]}, "hierarchies must be a list with one entry per user"),
        ({**GOOD, "users": "a"}, "users and num_samples must be lists"),
    ],
)
def test_read_leaf_split_format_errors_name_the_file(tmp_path: Path, payload, message: str) -> None:
    write_json(tmp_path / "ok.json", {"users": [], "num_samples": [], "user_data": {}})
    bad = write_json(tmp_path / "broken_7.json", payload)
    with pytest.raises(DataError) as info:
        read_leaf_split(tmp_path)
    text = info.value.message
    assert "broken_7.json" in text and message in text and str(bad) in text and "fix:" in text


def test_read_leaf_split_unreadable_duplicate_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no LEAF"):
        read_leaf_split(tmp_path / "missing")
    (tmp_path / "t.json.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="cannot read LEAF file t.json.gz"):
        read_leaf_split(tmp_path)
    (tmp_path / "t.json.gz").unlink()
    (tmp_path / "t.json").write_text('{"users": [')
    with pytest.raises(DataError, match="cannot read LEAF file t.json"):
        read_leaf_split(tmp_path)
    write_json(tmp_path / "t.json", GOOD)
    write_json(tmp_path / "u.json", GOOD)
    with pytest.raises(DataError, match="user 'a' also appears in another file"):
        read_leaf_split(tmp_path)


# --- grouping --------------------------------------------------------------------------------------


def test_hash_rule_is_sha256_of_the_user_id() -> None:
    users = [f"f{i:04d}_{i % 50:02d}" for i in range(300)]
    groups = Grouping("hash", clients=5, heldout_groups=1).assign(users)
    expected = [int(hashlib.sha256(u.encode()).hexdigest()[:16], 16) % 6 for u in users]
    assert groups == expected
    assert set(groups) == set(range(6))
    # a user's group does not depend on which other users are present
    assert Grouping("hash", 5, 1).assign(users[::7]) == expected[::7]
    assert stable_hash("abc") == int(hashlib.sha256(b"abc").hexdigest()[:16], 16)


def test_grouping_is_the_same_in_another_process() -> None:
    users = [f"user_{i}" for i in range(40)]
    code = (
        "from afr.profiles._leaf import Grouping; "
        f"print(Grouping('hash', 3, 1).assign({users!r}), "
        f"Grouping('attribute', 2, 1).assign({users!r}, [u[-1] for u in {users!r}], list(range(40))))"
    )
    # this process runs with a random string-hash seed; the child with a fixed, different one
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    here = f"{Grouping('hash', 3, 1).assign(users)} "
    here += f"{Grouping('attribute', 2, 1).assign(users, [u[-1] for u in users], list(range(40)))}\n"
    assert result.stdout == here


def test_attribute_rule_keeps_attributes_together_and_balances() -> None:
    users = ["a1", "a2", "b1", "c1", "d1", "e1"]
    attributes = ["A", "A", "B", "C", "D", "E"]
    sizes = [50, 50, 80, 30, 20, 10]
    # totals A 100, B 80, C 30, D 20, E 10 -> largest first onto the lightest group (lowest index on ties)
    # A -> 0 (0), B -> 1 (0), C -> 2 (0), D -> 2 (30), E -> 2 (50)
    assert Grouping("attribute", 2, 1).assign(users, attributes, sizes) == [0, 0, 1, 2, 2, 2]
    # ties in size are broken by name, so the input order does not matter
    order = [5, 3, 0, 4, 1, 2]
    shuffled = Grouping("attribute", 2, 1).assign(
        [users[i] for i in order], [attributes[i] for i in order], [sizes[i] for i in order]
    )
    assert shuffled == [[0, 0, 1, 2, 2, 2][i] for i in order]
    with pytest.raises(ConfigError, match="at least 6 distinct attributes"):
        Grouping("attribute", 5, 1).assign(users, attributes, sizes)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (None, "no grouping block"),
        ({"rule": "random", "clients": 3}, "unknown grouping rule"),
        ({"rule": "hash", "clients": 0}, "clients must be an integer >= 1"),
        ({"rule": "hash", "clients": 2, "heldout_groups": -1}, "heldout_groups must be an integer >= 0"),
        ({"rule": "hash", "clients": 2.5}, "clients must be an integer"),
        ({"rule": "hash", "clients": 2, "k": 3}, "unknown grouping key(s) k"),
    ],
)
def test_grouping_config_errors(block, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Grouping.from_config(block)
    assert message in info.value.message


def test_grouping_config_accepts_override_strings() -> None:
    assert Grouping.from_config({"rule": "hash", "clients": "7", "heldout_groups": 2.0}) == Grouping(
        "hash", 7, 2
    )


# --- a LEAF profile on generated data ----------------------------------------------------------------


def tiny_femnist(folder: Path, writers: int = 24, seed: int = 0) -> dict[str, tuple[list, list]]:
    """LEAF FEMNIST JSON with random k/255 images, in 3 files per split; returns train + test per writer."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(writers):
        n = int(rng.integers(6, 14))
        x = (rng.integers(0, 256, size=(n, 784)) / 255.0).tolist()
        y = rng.integers(0, 62, size=n).tolist()
        out[f"f{i:04d}_{i % 7:02d}"] = (x, y)
    users = list(out)
    for part, chunk in enumerate(np.array_split(np.arange(writers), 3)):
        for side, sl in (("train", slice(0, -2)), ("test", slice(-2, None))):
            payload = {users[k]: (out[users[k]][0][sl], out[users[k]][1][sl]) for k in chunk}
            write_json(
                folder / "femnist" / side / f"all_data_{part}_{side}.json.gz", leaf_payload(payload), gz=True
            )
    return out


def femnist_cfg(**overrides) -> dict:
    cfg = apply_budget(_yaml("femnist"), "smoke")
    cfg.update(overrides)
    return cfg


def test_heldout_groups_never_reach_training(tmp_path: Path) -> None:
    truth = tiny_femnist(tmp_path)
    cfg = femnist_cfg(grouping={"rule": "hash", "clients": 3, "heldout_groups": 2}, max_samples_per_user=None)
    profile = Femnist(cfg, tmp_path)
    assert profile.client_names == ["g0", "g1", "g2", "heldout_0", "heldout_1"]
    assert profile.training_client_names == ["g0", "g1", "g2"] and profile.num_clients == 3
    assert profile.heldout_clients == (3, 4)
    assert profile.heldout_settings() == {"heldout_clients": {}}  # evaluated on the final runs' weights

    groups = dict(zip(sorted(truth), Grouping("hash", 3, 2).assign(sorted(truth)), strict=True))
    held_users = [u for u, g in groups.items() if g >= 3]
    assert held_users  # the fixture is large enough for both held-out groups to have writers

    def row_set(inputs: torch.Tensor) -> Counter:
        return Counter(tuple(r) for r in inputs.tolist())

    held_rows = Counter()
    for data in profile.heldout_data():
        held_rows += row_set(data.inputs)
    expected_held = Counter()
    for user in held_users:
        expected_held += row_set(torch.tensor(np.rint(np.asarray(truth[user][0]) * 255), dtype=torch.uint8))
    assert held_rows == expected_held
    for part in ("fit", "val", "train", "test"):
        assert len(profile.data(part)) == 3
        for client in profile.data(part):
            assert not set(row_set(client.inputs)) & set(held_rows)

    table = profile.grouping_table()
    assert [r["client"] for r in table] == profile.client_names
    assert [r["heldout"] for r in table] == [False, False, False, True, True]
    assert sorted(u for r in table if r["heldout"] for u in r["user_ids"]) == sorted(held_users)
    assert sum(r["train_samples"] + r["test_samples"] for r in table) == sum(
        len(y) for _, y in truth.values()
    )
    assert (
        "sha256(u) mod 5" in profile.grouping_rule()
        and "last 2 group(s) are held out" in profile.grouping_rule()
    )
    assert profile.describe()["heldout_clients"] == ["heldout_0", "heldout_1"]


def test_leaf_profile_config_errors(tmp_path: Path) -> None:
    tiny_femnist(tmp_path, writers=4)
    with pytest.raises(ConfigError, match="conflicts with grouping.heldout_groups"):
        Femnist(femnist_cfg(heldout_clients=0), tmp_path)
    assert Femnist(femnist_cfg(heldout_clients=5), tmp_path).heldout_clients == (5,)  # the same group: fine
    with pytest.raises(ConfigError, match="max_samples_per_user"):
        Femnist(femnist_cfg(max_samples_per_user=1), tmp_path)
    with pytest.raises(ConfigError, match="default_model must be one of leaf_cnn, small_cnn"):
        Femnist(femnist_cfg(default_model="resnet"), tmp_path)
    profile = Femnist(femnist_cfg(grouping={"rule": "hash", "clients": 5, "heldout_groups": 1}), tmp_path)
    with pytest.raises(ConfigError, match="without users"):
        profile.data("train")  # 4 writers cannot fill 6 groups
    with pytest.raises(DataError) as info:
        Femnist(femnist_cfg(), tmp_path / "elsewhere").data("train")
    assert "afr data fetch femnist" in info.value.message


def test_femnist_rejects_non_leaf_pixels_and_labels(tmp_path: Path) -> None:
    profile = Femnist(femnist_cfg(), tmp_path)
    with pytest.raises(DataError, match="k/255"):
        profile.encode([[0.3] * 784], [1])
    with pytest.raises(DataError, match="784 floats"):
        profile.encode([[0.0] * 10], [1])
    with pytest.raises(DataError, match="0..61"):
        profile.encode([[0.0] * 784], [62])


def test_max_samples_per_user_keeps_evenly_spaced_samples(tmp_path: Path) -> None:
    truth = tiny_femnist(tmp_path, writers=6)
    cfg = femnist_cfg(grouping={"rule": "hash", "clients": 1, "heldout_groups": 0}, max_samples_per_user=3)
    profile = Femnist(cfg, tmp_path)
    train = profile.data("train")[0]
    assert len(train) == 3 * len(truth)
    first = sorted(truth)[0]
    x = np.asarray(truth[first][0][:-2])
    keep = np.unique(np.linspace(0, len(x) - 1, 3).round().astype(int))
    assert torch.equal(train.inputs[:3], torch.tensor(np.rint(x[keep] * 255), dtype=torch.uint8))


# --- the shipped subsets -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def femnist(shared_data: Path) -> Femnist:
    return Femnist(_yaml("femnist"), shared_data)


@pytest.fixture(scope="module")
def shakespeare(shared_data: Path) -> Shakespeare:
    return Shakespeare(_yaml("shakespeare"), shared_data)


def test_femnist_subset_grouping_and_sizes(femnist: Femnist, shared_data: Path) -> None:
    table = femnist.grouping_table()
    assert femnist.training_client_names == ["g0", "g1", "g2", "g3", "g4"]
    assert femnist.heldout_client_names == ["heldout_0"]
    assert sum(r["users"] for r in table) == 105
    assert sum(r["train_samples"] for r in table) == 14708 and sum(r["test_samples"] for r in table) == 1685
    assert all(r["users"] >= 10 for r in table)
    for row in table:
        assert {Grouping("hash", 5, 1).assign([u])[0] for u in row["user_ids"]} == {table.index(row)}
    train, test = femnist.data("train"), femnist.data("test")
    for client, row in zip(train, table, strict=False):
        assert client.inputs.dtype == torch.uint8 and client.inputs.shape == (row["train_samples"], 784)
        assert client.targets.dtype == torch.int64 and int(client.targets.max()) < 62
    assert [len(t) for t in test] == [r["test_samples"] for r in table[:5]]
    # uint8 storage is lossless: the first writer's images equal LEAF's floats
    g0_first = table[0]["user_ids"][0]  # users are concatenated in id order: its rows come first
    raw = raw_user(shared_data / "femnist" / "train", g0_first)
    x = torch.tensor(raw[g0_first][0], dtype=torch.float64)
    images = femnist.eval_inputs(train[0].inputs[: len(x)])
    assert images.shape == (len(x), 1, 28, 28) and images.dtype == torch.float32
    assert torch.allclose(images.reshape(len(x), -1).double(), x, atol=1e-7)
    assert torch.equal(train[0].targets[: len(x)], torch.tensor(raw[g0_first][1]))


def test_shakespeare_subset_plays_and_alphabet(shakespeare: Shakespeare, shared_data: Path) -> None:
    assert len(ALL_LETTERS) == 80 and len(set(ALL_LETTERS)) == 80
    raw = raw_leaf(shared_data / "shakespeare" / "train")
    chars = set("".join(x for xs, _ in raw.values() for x in xs)) | set(
        "".join(y for _, ys in raw.values() for y in ys)
    )
    assert chars <= set(ALL_LETTERS)
    table = shakespeare.grouping_table()
    assert sum(r["users"] for r in table) == 10
    assert sum(r["train_samples"] for r in table) == 41990
    # LEAF's files declare 4671 test samples, but its Shakespeare split dropped 79 overlapping
    # windows per user after counting: 4671 - 10 x 79 windows are really there
    test_raw = raw_leaf(shared_data / "shakespeare" / "test")
    assert sum(r["test_samples"] for r in table) == sum(len(y) for _, y in test_raw.values()) == 4671 - 790
    plays = {u: play_of_user(u, list(raw)) for u in raw}
    assert plays["PERICLES__PRINCE_OF_TYRE_SCROOP"] == "PERICLES__PRINCE_OF_TYRE"
    assert (
        plays["THE_FIRST_PART_OF_KING_HENRY_THE_FOURTH_HASTINGS"] == "THE_FIRST_PART_OF_KING_HENRY_THE_FOURTH"
    )
    assert len(set(plays.values())) == 5
    for row in table:  # one play per group, and each play in exactly one group
        assert len(row["attributes"]) == 1
        assert {plays[u] for u in row["user_ids"]} == set(row["attributes"])
    # largest play first: KING_LEAR (5 roles) is g0; the smallest, PERICLES, is the held-out group
    assert table[0]["attributes"] == ["THE_TRAGEDY_OF_KING_LEAR"] and table[0]["users"] == 5
    assert table[-1]["heldout"] and table[-1]["attributes"] == ["PERICLES__PRINCE_OF_TYRE"]
    train = shakespeare.data("train")
    user = table[0]["user_ids"][0]
    decoded = "".join(ALL_LETTERS[i] for i in train[0].inputs[0].tolist())
    assert decoded == raw[user][0][0]
    assert ALL_LETTERS[int(train[0].targets[0])] == raw[user][1][0]
    assert shakespeare.eval_inputs(train[0].inputs[:2]).dtype == torch.int64


def test_shakespeare_rejects_foreign_characters(tmp_path: Path) -> None:
    profile = Shakespeare(_yaml("shakespeare"), tmp_path)
    with pytest.raises(DataError, match="outside LEAF's 80-symbol alphabet: \\['é'\\]"):
        profile.encode(["é" * 80], ["a"])
    with pytest.raises(DataError, match="80-character"):
        profile.encode(["abc"], ["a"])
    with pytest.raises(DataError, match="single characters"):
        profile.encode(["a" * 80], ["ab"])


def write_random_shakespeare(folder: Path, users: int = 3, chars: int = 600) -> dict[str, str]:
    """LEAF Shakespeare JSON whose texts are random symbols: any shared 40-gram means shared text."""
    rng = np.random.default_rng(5)
    alphabet = np.array(list(ALL_LETTERS[1:]))
    texts = {f"PLAY_{u}_ROLE": "".join(rng.choice(alphabet, size=chars)) for u in range(users)}
    for side in ("train", "test"):
        payload = {
            u: ([t[i : i + 80] for i in range(len(t) - 80)], [t[i + 80] for i in range(len(t) - 80)])
            for u, t in texts.items()
        }
        write_json(folder / "shakespeare" / side / f"all_data_{side}.json", leaf_payload(payload))
    return texts


@pytest.mark.parametrize("cap", [None, 100])
def test_shakespeare_validation_windows_do_not_overlap_fit(tmp_path: Path, cap: int | None) -> None:
    texts = write_random_shakespeare(tmp_path)
    cfg = apply_budget(_yaml("shakespeare"), "smoke")
    cfg.update(grouping={"rule": "hash", "clients": 1, "heldout_groups": 0}, max_samples_per_user=cap)
    profile = Shakespeare(cfg, tmp_path)
    fit, val = profile.data("fit")[0], profile.data("val")[0]

    def decode(rows: torch.Tensor) -> list[str]:
        return ["".join(ALL_LETTERS[i] for i in row) for row in rows.tolist()]

    def grams(windows: list[str]) -> set[str]:
        return {w[i : i + 40] for w in windows for i in range(41)}

    fit_text, val_text = decode(fit.inputs), decode(val.inputs)
    assert not grams(fit_text) & grams(val_text)
    per_user = 520 if cap is None else 100
    assert len(val) == 3 * math.ceil(0.2 * per_user)  # 20 % of each user's windows, carved from its tail
    if cap is None:
        assert len(fit) == 3 * (416 - 79 + 1)  # windows 0..337 share at most a boundary character
    for text in texts.values():  # every user's last window is validation, its first is fit
        assert text[-81:-1] in val_text and text[:80] in fit_text


def test_play_of_user_merges_multi_word_characters() -> None:
    users = ["KING_LEAR_KENT", "KING_LEAR_FIRST_LORD", "HAMLET_FIRST_LORD", "HAMLET_HORATIO"]
    assert [play_of_user(u, users) for u in users] == ["KING_LEAR", "KING_LEAR", "HAMLET", "HAMLET"]


# --- models and a tiny run -----------------------------------------------------------------------------


def test_reference_models() -> None:
    cnn = FemnistCNN()
    assert sum(p.numel() for p in cnn.parameters()) == 6_603_710  # LEAF's count
    assert cnn(torch.rand(3, 1, 28, 28)).shape == (3, 62)
    lstm = CharLSTM()
    # TF's LSTM has one bias per gate (817,872); PyTorch keeps two: + 2 layers x 4 x 256
    assert sum(p.numel() for p in lstm.parameters()) == 817_872 + 2 * 4 * 256
    assert lstm(torch.randint(0, 80, (3, 80))).shape == (3, 80)


@pytest.mark.parametrize("name", ["femnist", "shakespeare"])
def test_smoke_fedavg_run(name: str, shared_data: Path) -> None:
    cls = {"femnist": Femnist, "shakespeare": Shakespeare}[name]
    profile = cls(apply_budget(_yaml(name), "smoke"), shared_data)
    assert profile.max_samples_per_user is not None
    recipe = profile.make_recipe(FedAvg)
    first = run_federation(profile, recipe, seed=3, stage="search")
    again = run_federation(profile, recipe, seed=3, stage="search")
    assert first.steps == profile.budget.rounds * profile.num_clients * profile.budget.local_steps
    for key, value in first.state_dict.items():
        assert torch.isfinite(value).all()
        assert torch.equal(value, again.state_dict[key])
    evaluation = profile.evaluate(first.build_model(profile), profile.heldout_data())
    assert len(evaluation.per_client) == 1 and 0.0 <= evaluation.mean <= 1.0
    # the smoke preset trains the small variant; the published default is LEAF's model
    assert first.model_variant == "default"
    small = sum(p.numel() for p in first.build_model(profile).parameters())
    assert small < sum(p.numel() for p in cls(_yaml(name), shared_data).build_model().parameters()) / 10
