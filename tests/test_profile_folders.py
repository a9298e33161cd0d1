"""A profile is one folder plus one YAML: the contract every shipped profile keeps, discovery from the YAMLs
(no registry), and a toy profile written only as a folder and a YAML in a temporary directory, picked up by
a campaign, ``--help``, the generated docs and a recipe run without any other edit."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from afr.cli import main as afr_cli
from afr.data import DataSource
from afr.errors import ConfigError
from afr.ledger import Ledger
from afr.profiles import (
    PROFILE_MODULES,
    Profile,
    import_root,
    load_profile_config,
    make_profile,
    profile_class,
    profile_names,
)
from afr.profiles._docs import render_profiles_docs

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 900

# --- the contract of every shipped profile ------------------------------------------------------------


@pytest.mark.parametrize("name", profile_names())
def test_shipped_profile_keeps_the_folder_contract(name: str) -> None:
    target = load_profile_config(name)["_target_"]
    package_name, _, class_name = target.rpartition(".")
    assert package_name == f"afr.profiles.{name}", "a shipped profile's folder is afr/profiles/<name>"
    for module in ("__init__", *PROFILE_MODULES):
        spec = importlib.util.find_spec(package_name if module == "__init__" else f"{package_name}.{module}")
        assert spec is not None, f"{package_name} has no module {module}.py"
    cls = profile_class(name)
    assert issubclass(cls, Profile) and cls.__module__ == f"{package_name}.profile" and cls.name == name
    package = importlib.import_module(package_name)
    assert getattr(package, class_name) is cls, "the package re-exports the profile class"
    assert (package.__doc__ or "").strip(), "the package docstring is the profile's description"
    fetch = importlib.import_module(f"{package_name}.fetch")
    assert isinstance(fetch.SOURCE, DataSource) and cls.source is fetch.SOURCE
    assert import_root(cls) is None, "afr's own profiles need no extra sys.path entry"


def test_synthetic_generates_its_data() -> None:
    assert profile_class("synthetic").source == DataSource()


# --- discovery ----------------------------------------------------------------------------------------


TOY_PACKAGE = {
    "__init__.py": '''
        """Toy: two Gaussian classes on three clients, drawn from ``data_seed`` (a test profile).

        Written outside afr to show that a profile is one folder plus one YAML.
        """

        from .profile import Toy

        __all__ = ["Toy"]
    ''',
    "profile.py": '''
        """The toy profile class: ties the data, the model, the loss and the metric together."""

        from afr.profiles import Profile

        from .dataset import CLIENTS, DIM, make_clients
        from .fetch import SOURCE
        from .metric import accuracy, cross_entropy
        from .model import Linear


        class Toy(Profile):
            name = "toy"
            metric_name = "accuracy"
            source = SOURCE
            model_variants = {"default": lambda p: Linear(DIM)}

            @property
            def client_names(self):
                return list(CLIENTS)

            def load_splits(self):
                return make_clients(int(self.cfg.get("data_seed", 0)))

            def loss(self, outputs, targets):
                return cross_entropy(outputs, targets)

            def metric(self, outputs, targets):
                return accuracy(outputs, targets)
    ''',
    "dataset.py": '''
        """Two Gaussian classes per client, each client shifted, drawn from a seed."""

        import torch

        from afr.profiles import ClientData

        CLIENTS = ("north", "south", "east")
        DIM = 4


        def make_clients(seed, train=60, test=20):
            generator = torch.Generator().manual_seed(seed)
            parts = ([], [])
            for k in range(len(CLIENTS)):
                for out, n in zip(parts, (train, test)):
                    labels = torch.randint(0, 2, (n,), generator=generator)
                    shift = (2.0 * labels - 1.0)[:, None] + 0.3 * k
                    inputs = torch.randn(n, DIM, generator=generator) + shift
                    out.append(ClientData(inputs, labels))
            return parts
    ''',
    "model.py": '''
        """A linear classifier."""

        from torch import nn


        class Linear(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.fc = nn.Linear(dim, 2)

            def forward(self, x):
                return self.fc(x)
    ''',
    "metric.py": '''
        """Cross-entropy and accuracy."""

        from torch import nn


        def cross_entropy(outputs, targets):
            return nn.functional.cross_entropy(outputs, targets)


        def accuracy(outputs, targets):
            return float((outputs.argmax(dim=1) == targets).float().mean())
    ''',
    "fetch.py": '''
        """Nothing to download: the data is generated from ``data_seed``."""

        from afr.data import DataSource

        SOURCE = DataSource()
    ''',
}

TOY_YAML = """
_target_: toyprof.Toy
name: toy
data_seed: 0
rounds: 2
local_steps: 3
batch_size: 8
campaign_runs: 2
seeds:
  search: [0]
  final: [42, 43]
recipes:
  fedavg: {lr: 0.1}
search_space:
  lr: {low: 1.0e-3, high: 1.0, log: true}
  server_lr: {low: 1.0e-2, high: 3.0, log: true}
heldout:
  kind: settings
  settings:
    fresh_draw: {data_seed: 1}
verdict:
  margin: 0.01
  why: "one point of accuracy"
  final_seeds: 2
"""


def write_toy(root: Path, *, target: str = "toyprof.Toy", name: str = "toy") -> Path:
    """The toy profile as a user writes it: ``<root>/toyprof/`` and ``<root>/conf/profile/<name>.yaml``."""
    package = root / "toyprof"
    package.mkdir(parents=True, exist_ok=True)
    for filename, text in TOY_PACKAGE.items():
        (package / filename).write_text(textwrap.dedent(text).lstrip())
    (root / "conf" / "profile").mkdir(parents=True, exist_ok=True)
    yaml = TOY_YAML.replace("_target_: toyprof.Toy", f"_target_: {target}").replace(
        "name: toy", f"name: {name}"
    )
    (root / "conf" / "profile" / f"{name}.yaml").write_text(yaml.lstrip())
    return root / "conf"


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy written under ``tmp_path`` and importable (as PYTHONPATH makes it for the command line)."""
    conf = write_toy(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield conf
    for module in [m for m in sys.modules if m == "toyprof" or m.startswith("toyprof.")]:
        del sys.modules[module]


def test_discovery_finds_the_toy_on_the_search_path(toy: Path, tmp_path: Path) -> None:
    assert "toy" not in profile_names()
    names = profile_names([toy])
    assert "toy" in names and set(profile_names()) < set(names)
    assert profile_names([f"file://{toy}"]) == names, "Hydra's file:// spelling is accepted"
    cls = profile_class("toy", [toy])
    assert cls.__module__ == "toyprof.profile" and import_root(cls) == str(tmp_path.resolve())
    cfg = load_profile_config("toy", [toy])
    profile = make_profile("toy", cfg)  # the class comes from the config's _target_
    assert type(profile) is cls and profile.num_clients == 3
    assert [len(d) for d in profile.data("test")] == [20, 20, 20]


def test_unknown_profile_lists_the_known_ones(toy: Path) -> None:
    with pytest.raises(ConfigError) as info:
        profile_class("nope", [toy])
    assert "nope" in info.value.message and "heart_disease" in info.value.message
    assert "toy" in info.value.message


def test_a_bad_target_names_the_yaml_and_the_fix(tmp_path: Path) -> None:
    conf = write_toy(tmp_path / "missing", target="not_a_package.Toy", name="broken")
    with pytest.raises(ConfigError) as info:
        profile_class("broken", [conf])
    text = info.value.message
    assert "not_a_package" in text and str(conf / "profile" / "broken.yaml") in text and "fix:" in text
    conf = write_toy(tmp_path / "wrong", target="afr.profiles.ClientData", name="wrong")
    with pytest.raises(ConfigError, match="not a Profile subclass"):
        profile_class("wrong", [conf])
    with pytest.raises(ConfigError, match="not a Profile subclass"):
        make_profile("x", {**load_profile_config("synthetic"), "_target_": "afr.errors.ConfigError"})


def test_the_shipped_yaml_wins_a_name_clash(tmp_path: Path) -> None:
    conf = write_toy(tmp_path, target="toyprof.Toy", name="synthetic")
    assert profile_class("synthetic", [conf]) is profile_class("synthetic")


def test_with_overrides_keeps_class_and_data_folder(tmp_path: Path) -> None:
    profile = make_profile("synthetic", data_dir=tmp_path, rounds=3)
    other = profile.with_overrides(data_seed=1, rounds=4)
    assert type(other) is type(profile) and other.data_dir == profile.data_dir
    assert other.budget.rounds == 4 and other.cfg["data_seed"] == 1 and profile.cfg["data_seed"] == 0
    assert other.cfg == {**profile.cfg, "data_seed": 1, "rounds": 4}


def test_afr_data_finds_the_toy_with_searchpath(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert afr_cli(["data", "path", "toy", "--data-dir", str(data_dir)]) == 2  # not on the search path
    assert "unknown profile 'toy'" in capsys.readouterr().err
    assert afr_cli(["data", "path", "toy", "--data-dir", str(data_dir), "--searchpath", str(toy)]) == 0
    assert capsys.readouterr().out.strip() == str(data_dir / "toy")
    argv = ["data", "fetch", "toy", "--data-dir", str(data_dir), "--searchpath", str(toy), "--no-progress"]
    assert afr_cli(argv) == 0
    assert "toy: 0 file(s) ready" in capsys.readouterr().out  # generated data: nothing to download


def test_docs_render_the_toy(toy: Path) -> None:
    text = render_profiles_docs(None, [toy])
    section = text.split("## `toy`", 1)[1]
    assert section.lstrip().startswith("Toy: two Gaussian classes on three clients")
    assert "| north | 48 | 12 | 20 | — |" in section  # generated data: sizes without any file


# --- done when: the toy through the command lines, nothing else edited ----------------------------------


class ToyCommands:
    """The four command lines on the toy, started at once (each is seconds of imports)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        conf = write_toy(root / "user")
        search = f"hydra.searchpath=[file://{conf}]"
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "HYDRA_FULL_ERROR"}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(root / "user"), str(REPO), env.get("PYTHONPATH")])
        )
        env["AFR_DATA_DIR"] = str(root / "data")  # no profile's data: the docs list them without sizes
        run = [sys.executable, "-m", "afr.run", search]
        commands = {
            "campaign": [
                *run,
                "agent=evolve",
                "profile=toy",
                "campaign.runs_per_arm=2",
                "campaign.top_k=1",
                "campaign.final_seeds=2",
                "campaign.heldout_seeds=1",
                f"campaign.dir={root / 'camp'}",
                "tensorboard=false",
                f"hydra.run.dir={root / 'campaign_run'}",
            ],
            "help": [*run, "--help"],
            "docs": [
                sys.executable,
                "-m",
                "afr.profiles",
                "docs",
                "--searchpath",
                str(conf),
                "--output",
                str(root / "p.md"),
            ],
            "train": [*run, "profile=toy", "recipe=fedavg", "seeds=1", f"hydra.run.dir={root / 'run'}"],
        }
        self.procs = {
            name: subprocess.Popen(
                argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for name, argv in commands.items()
        }
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def get(self, name: str) -> subprocess.CompletedProcess:
        if name not in self.done:
            proc = self.procs[name]
            out, err = proc.communicate(timeout=TIMEOUT)
            self.done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.done[name]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory):
    started = ToyCommands(tmp_path_factory.mktemp("toy"))
    yield started
    started.close()


def test_a_campaign_runs_on_the_toy(commands: ToyCommands) -> None:
    done = commands.get("campaign")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    directory = commands.root / "camp"
    assert (directory / "report.md").is_file()
    ledger = Ledger.for_campaign_dir(directory)
    campaign = ledger.campaign_by_name("toy-evolve-seed0")
    assert campaign is not None
    runs = ledger.runs(campaign.id)
    arms = [ledger.candidate(r.candidate_id).arm for r in runs if r.stage == "search"]
    assert arms.count("agent") == 2 and arms.count("control") == 2
    assert all(r.status == "ok" for r in runs), [(r.run_key, r.status, r.message) for r in runs]
    assert {r.split for r in runs if r.stage == "heldout"} == {"heldout:fresh_draw"}
    assert any(r.stage == "final" for r in runs)


def test_help_lists_the_toy(commands: ToyCommands) -> None:
    done = commands.get("help")
    assert done.returncode == 0, done.stderr[-3000:]
    groups = done.stdout.split("== Config ==")[0]  # the config groups and their options
    (profiles,) = [line for line in groups.splitlines() if line.startswith("profile:")]
    assert "toy" in profiles.split(":", 1)[1].replace(",", " ").split()


def test_docs_list_the_toy(commands: ToyCommands) -> None:
    done = commands.get("docs")
    assert done.returncode == 0, done.stderr[-3000:]
    text = (commands.root / "p.md").read_text()
    assert "## `toy`" in text and "Toy: two Gaussian classes on three clients" in text
    assert "## `heart_disease`" in text, "the shipped profiles are still there"


def test_a_recipe_trains_on_the_toy(commands: ToyCommands) -> None:
    done = commands.get("train")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((commands.root / "run" / "results.json").read_text())
    assert results["profile"] == "toy" and results["recipe"] == "fedavg"
    assert results["budget"] == {"rounds": 2, "local_steps": 3, "batch_size": 8}
    assert [row["seed"] for row in results["seeds"]] == [42] and 0.0 <= results["mean"] <= 1.0
