"""The command lines: every bad input gives one clear message and a non-zero exit, never a traceback;
a small run succeeds and writes its results.

The ``python -m afr.run`` subprocesses (≈7 s of imports each) are started together, once, and run in
parallel; most configuration errors are checked in-process through ``hydra.compose`` + ``train_and_test``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from afr.cli import main as afr_cli
from afr.errors import ConfigError, DataError
from afr.profiles import profile_class
from afr.run import resolve_seeds, train_and_test
from tests._http import serve_directory

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240

# name -> overrides ({tmp} is the case's own temporary folder)
CASES: dict[str, list[str]] = {
    "unknown_profile": ["profile=nope"],
    "unknown_recipe": ["recipe=nope", "profile=synthetic"],
    "missing_recipe_file": ["recipe=no_such_recipe.py", "profile=synthetic"],
    "missing_data": ["profile=heart_disease", "data_dir={tmp}/empty"],
    "scalar_out_of_range": ["profile=synthetic", "+scalars.lr=-1"],
    "ok": ["profile=synthetic", "seeds=1", "profile.rounds=2", "profile.local_steps=5"],
    # a run folder the user named, inside a folder that was there (empty) before the command
    "bad_input_named_run_dir": ["recipe=nope", "profile=synthetic", "hydra.run.dir={tmp}/empty/run"],
}


class Runs:
    """The CLI subprocesses, all started at once; ``get(name)`` waits for one of them."""

    def __init__(self, base: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env["AFR_DATA_DIR"] = str(base / "default_data")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.dirs: dict[str, Path] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.done: dict[str, subprocess.CompletedProcess] = {}
        for name, overrides in CASES.items():
            tmp = base / name
            (tmp / "empty").mkdir(parents=True)
            self.dirs[name] = tmp
            args = [o.format(tmp=tmp) for o in overrides]
            if not any(o.startswith("hydra.run.dir=") for o in overrides):
                args.append(f"hydra.run.dir={tmp / 'run'}")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "afr.run", *args],
                cwd=tmp,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def get(self, name: str) -> subprocess.CompletedProcess:
        if name not in self.done:
            proc = self.procs[name]
            try:
                out, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"`python -m afr.run {' '.join(CASES[name])}` timed out:\n{out}\n{err}")
            self.done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.done[name]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    started = Runs(tmp_path_factory.mktemp("cli"))
    yield started
    started.close()


def assert_one_clear_error(done: subprocess.CompletedProcess, code: int | None = 2) -> str:
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    if code is not None:
        assert done.returncode == code, text
    assert "Traceback" not in text
    return text


# --- subprocess: bad inputs ------------------------------------------------------------------------


def test_bad_input_removes_only_what_hydra_made(runs: Runs) -> None:
    """The run folder Hydra made for the failed command goes; the (empty) folder the user put it in stays."""
    assert_one_clear_error(runs.get("bad_input_named_run_dir"))
    tmp = runs.dirs["bad_input_named_run_dir"]
    assert not (tmp / "empty" / "run").exists()
    assert (tmp / "empty").is_dir()


def test_unknown_profile(runs: Runs) -> None:
    text = assert_one_clear_error(runs.get("unknown_profile"), code=None)
    assert "nope" in text
    assert all(name in text for name in ("heart_disease", "tcga_brca", "synthetic"))


def test_unknown_recipe(runs: Runs) -> None:
    done = runs.get("unknown_recipe")
    assert_one_clear_error(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope" in errors[0]
    assert all(name in done.stderr for name in ("fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi"))


def test_missing_recipe_file(runs: Runs) -> None:
    done = runs.get("missing_recipe_file")
    assert_one_clear_error(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no_such_recipe.py" in errors[0] and "does not exist" in errors[0]
    assert not (runs.dirs["missing_recipe_file"] / "run").exists(), "bad input left an output folder behind"


def test_missing_data(runs: Runs) -> None:
    done = runs.get("missing_data")
    assert_one_clear_error(done)
    assert "afr data fetch heart_disease" in done.stderr
    assert str(runs.dirs["missing_data"] / "empty") in done.stderr
    assert not (runs.dirs["missing_data"] / "empty" / "heart_disease").exists()  # nothing downloaded


def test_scalar_out_of_range(runs: Runs) -> None:
    done = runs.get("scalar_out_of_range")
    assert_one_clear_error(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lr" in errors[0] and "-1" in errors[0]


# --- subprocess: a successful small run ------------------------------------------------------------


def test_small_run_succeeds(runs: Runs) -> None:
    done = runs.get("ok")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "test accuracy" in done.stdout
    results = json.loads((runs.dirs["ok"] / "run" / "results.json").read_text())
    assert [row["seed"] for row in results["seeds"]] == [42]
    assert results["profile"] == "synthetic" and results["recipe"] == "fedavg"
    assert results["budget"]["rounds"] == 2 and results["budget"]["local_steps"] == 5
    assert results["seeds"][0]["steps"] == 10 * 2 * 5
    assert 0.0 <= results["mean"] <= 1.0 and results["std"] == 0.0
    assert list((runs.dirs["ok"] / "run" / "tb" / "seed_42").glob("events.out.tfevents.*"))
    # One line says where the results went (the absolute folder, whatever hydra.run.dir said)
    folder = (runs.dirs["ok"] / "run").resolve()
    said = [line for line in done.stdout.splitlines() if line.startswith("results: ")]
    assert len(said) == 1 and said[0].startswith(f"results: {folder / 'results.json'} "), done.stdout
    assert f"tensorboard --logdir {folder / 'tb'}" in said[0]


@pytest.mark.parametrize("name", ["unknown_profile", "unknown_recipe", "missing_data", "scalar_out_of_range"])
def test_a_failed_command_leaves_nothing_behind(runs: Runs, name: str) -> None:
    assert runs.get(name).returncode != 0
    assert not (runs.dirs[name] / "run").exists(), "a failed command left its output folder behind"
    assert "results: " not in runs.get(name).stdout


# --- in-process: malformed configuration -----------------------------------------------------------


def config(*overrides: str) -> DictConfig:
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["seeds=abc"], ["seeds", "abc"]),
        (["seeds=0"], ["seeds", ">= 1"]),
        (["seeds=[]"], ["seeds"]),
        (["seeds=[1,x]"], ["seeds"]),
        (["profile.rounds=abc"], ["rounds"]),
        (["profile.local_steps=0"], ["local_steps"]),
        (["profile.val_fraction=1.5"], ["val_fraction"]),
        (["+scalars.lr=-1"], ["lr", "outside"]),
        (["+scalars.lr=5"], ["lr", "outside"]),
        (["+scalars.nope=1"], ["nope", "lr", "server_lr"]),
        (["+scalars.lr=abc"], ["lr"]),
        (["scalars=5"], ["scalars"]),
        (["recipe=nope"], ["nope", "fedavg", "fedadagrad"]),
        (["recipe=nope.py"], ["nope.py"]),
        (["threads=0"], ["threads"]),
        (["recipe=fedprox", "+scalars.mu=100"], ["mu"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and "=" in v[0] else None,
)
def test_malformed_config(overrides: list[str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        train_and_test(config(*overrides))
    message = info.value.message
    assert all(word in message for word in words), message


def test_missing_data_in_process(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        train_and_test(config("profile=tcga_brca", f"data_dir={tmp_path}", "seeds=1"))
    assert "afr data fetch tcga_brca" in info.value.message


def test_resolve_seeds() -> None:
    final = [42, 43, 44, 45, 46]
    assert resolve_seeds(2, final) == [42, 43]
    assert resolve_seeds(7, final) == [42, 43, 44, 45, 46, 47, 48]
    assert resolve_seeds([5, 1], final) == [5, 1]
    for bad in (0, -1, True, "3", [], [1.5], None):
        with pytest.raises(ConfigError):
            resolve_seeds(bad, final)


# --- in-process: a successful run ------------------------------------------------------------------


def test_train_and_test_tcga(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(
        "profile=tcga_brca",
        f"data_dir={shared_data}",
        "seeds=2",
        "profile.rounds=2",
        "profile.local_steps=5",
    )
    summary = train_and_test(cfg, tmp_path)
    assert [row["seed"] for row in summary["seeds"]] == [42, 43]
    assert math.isfinite(summary["mean"]) and math.isfinite(summary["std"])
    assert all(0.0 <= row["test"] <= 1.0 for row in summary["seeds"])
    assert summary["metric"] == "c_index" and summary["recipe"] == "fedavg"
    assert summary["scalars"]["lr"] == 0.1  # the profile's FedAvg default
    assert summary["seeds"][0]["test"] != summary["seeds"][1]["test"]
    assert json.loads((tmp_path / "results.json").read_text())["mean"] == summary["mean"]
    assert list((tmp_path / "tb" / "seed_43").glob("events.out.tfevents.*"))
    out = capsys.readouterr().out
    assert "test c_index" in out and "over 2 seeds" in out


def test_train_and_test_with_scalars_and_seed_list() -> None:
    cfg = config(
        "recipe=fedprox",
        "seeds=[3]",
        "profile.rounds=1",
        "profile.local_steps=2",
        "+scalars.mu=0.5",
        "+scalars.lr=0.02",
    )
    summary = train_and_test(cfg)
    assert [row["seed"] for row in summary["seeds"]] == [3]
    assert summary["scalars"]["mu"] == 0.5 and summary["scalars"]["lr"] == 0.02
    assert summary["recipe"] == "fedprox"


# --- recipe=<file.py>: validated and sandboxed unless recipe.trusted=true --------------------------------

USER_RECIPE = """from afr.recipe import FedAvg


class MyRecipe(FedAvg):
    def client_lr(self, round_idx, client):
        return 0.05
"""
SMALL = ("profile=synthetic", "seeds=[42]", "profile.rounds=1", "profile.local_steps=2")


def test_file_recipe_runs_sandboxed_and_is_labelled_by_its_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.py"
    path.write_text(USER_RECIPE)
    summary = train_and_test(config(f"recipe={path}", *SMALL))
    out = capsys.readouterr().out
    assert "untrusted" in out and "sandbox" in out
    assert summary["recipe"] == "MyRecipe" and summary["class_name"] == "MyRecipe"
    assert summary["recipe_sha256"] == hashlib.sha256(USER_RECIPE.encode()).hexdigest()
    assert summary["trusted"] is False
    assert [row["status"] for row in summary["seeds"]] == ["ok"]
    assert 0.0 <= summary["seeds"][0]["test"] <= 1.0


def test_file_recipe_breaking_the_surface_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(USER_RECIPE.replace("return 0.05", "return eval('0.05')"))
    with pytest.raises(ConfigError) as err:
        train_and_test(config(f"recipe={path}", *SMALL))
    assert "forbidden-name" in err.value.message and "recipe.trusted=true" in str(err.value)


def test_trusted_file_recipe_runs_here_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.py"
    path.write_text(USER_RECIPE)
    summary = train_and_test(config(f"recipe={path}", "+recipe_trusted=true", *SMALL))
    assert "trusted:" in capsys.readouterr().out
    assert summary["trusted"] is True and summary["recipe"] == "MyRecipe"
    assert summary["recipe_sha256"] == hashlib.sha256(USER_RECIPE.encode()).hexdigest()


def test_recipe_trusted_on_the_command_line() -> None:
    from afr.run import _trusted_override

    assert _trusted_override(["recipe=x.py", "recipe.trusted=true", "seeds=1"]) == [
        "recipe=x.py",
        "+recipe_trusted=true",
        "seeds=1",
    ]
    with pytest.raises(ConfigError):
        train_and_test(config("recipe=fedavg", "+recipe_trusted=true", *SMALL))


# --- afr data fetch: checksum mismatch -------------------------------------------------------------


def test_fetch_checksum_mismatch(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corrupted = profile_class("heart_disease").source.files[0].filename
    with serve_directory(shared_data) as url:
        url.corrupt.add(corrupted)
        code = afr_cli(
            ["data", "fetch", "heart_disease", "--data-dir", str(tmp_path), "--mirror", url, "--no-progress"]
        )
    assert code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "md5" in errors[0] and corrupted in errors[0]
    assert "Traceback" not in err
    folder = tmp_path / "heart_disease"
    assert not (folder / corrupted).exists()
    assert not list(folder.glob("*.part"))


# --- the `afr` command ---------------------------------------------------------------------------------

AFR_COMMANDS = ("run", "evaluate", "report", "table", "validate", "data", "export")


def afr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``afr <args>`` as the console script runs it (``afr.cli:main``), in a subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", "import sys; from afr.cli import main; sys.exit(main())", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_afr_is_the_console_script_and_lists_its_commands() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"afr": "afr.cli:main"}
    done = afr("--help")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("positional arguments:", 1)[1].split("options:", 1)[0]
    for command in AFR_COMMANDS:
        assert f"\n    {command} " in listed, (command, done.stdout)


def test_afr_help_and_bad_input_import_nothing_heavy(tmp_path: Path) -> None:
    # Lazy imports keep `afr --help` and input errors fast: asserted by what is imported, not by time.
    probe = (
        "import sys, contextlib, io\n"
        "from afr.cli import main\n"
        "for argv in (['--help'], ['validate', 'missing.py'], ['report', 'no_campaign'], ['data'],\n"
        "             ['export', 'flower', 'no_campaign', 'agent#1', '--out', 'x'],\n"
        "             ['export', 'flower', '.', 'x', '--out', 'x']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        code = main(argv)\n"
        "    assert code != 0 or argv == ['--help'], (argv, code)\n"
        "heavy = ('torch', 'hydra', 'lightning', 'sqlalchemy', 'optuna')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_afr_run_is_python_m_afr_run(tmp_path: Path) -> None:
    args = ["--cfg", "job", "agent=evolve", "profile=heart_disease", "budget=default", "campaign.seed=3"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    direct = subprocess.run(
        [sys.executable, "-m", "afr.run", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    wrapped = afr("run", *args, cwd=tmp_path)
    assert direct.returncode == wrapped.returncode == 0, wrapped.stderr
    assert wrapped.stdout == direct.stdout and "seed: 3" in wrapped.stdout
    bad = afr("run", "profile=synthetic", "recipe=nope", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert [line for line in bad.stderr.splitlines() if line.startswith("error: ")] == [
        line for line in bad.stderr.splitlines() if "unknown recipe 'nope'" in line
    ]
    assert not list(tmp_path.iterdir()), "a failed command left files behind"


GOOD_RECIPE = """from afr.recipe import FedAvg


class Mine(FedAvg):
    name = "mine"

    def client_lr(self, round_idx, client):
        return 0.5 * super().client_lr(round_idx, client)
"""

BAD_RECIPE = """import os

from afr.recipe import FedAvg


class Mine(FedAvg):
    name = "mine"

    def client_lr(self, round_idx, client):
        return float(os.getpid())
"""


def test_afr_validate_prints_violations_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD_RECIPE)
    (tmp_path / "bad.py").write_text(BAD_RECIPE)
    good = afr("validate", "good.py", "profile=heart_disease", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip() == "[heart_disease] good.py: accepted"
    bad = afr("validate", "bad.py", "profile=heart_disease", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    violations = [line.strip() for line in bad.stdout.splitlines() if line.startswith("  ")]
    assert violations and all(v.startswith("bad.py:") for v in violations), bad.stdout
    assert any("[import-not-allowed]" in v and "import os" in v for v in violations), bad.stdout
    everywhere = afr("validate", "bad.py", cwd=tmp_path)  # no profile=: every shipped profile
    assert everywhere.returncode == 1
    assert {line.split("]")[0] + "]" for line in everywhere.stdout.splitlines() if line.startswith("[")} == {
        f"[{name}]" for name in profile_names_shipped()
    }
    for args, words in (
        (["validate", "missing.py"], "does not exist"),
        (["validate", "good.py", "profile=nope"], "unknown profile 'nope'"),
        (["validate", "good.py", "rounds=3"], "unknown option 'rounds=3'"),
    ):
        done = afr(*args, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and words in errors[0], done.stderr


def profile_names_shipped() -> list[str]:
    from afr.profiles import profile_names

    return profile_names()


def test_afr_report_is_python_m_afr_report(tmp_path: Path) -> None:
    done = afr("report", str(tmp_path))
    assert done.returncode == 2 and f"no ledger.db in {tmp_path}" in done.stderr
    usage = afr("report", "--help")
    assert usage.returncode == 0 and usage.stdout.startswith("usage: afr report")


def test_outputs_are_git_ignored() -> None:
    # Single runs and campaigns write under the folder the command runs from: in a clone, git ignores them.
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["afr_runs/2026-01-01/00-00-00_synthetic/results.json", "afr_campaigns/x/ledger.db"]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == paths, done.stdout + done.stderr
    tracked = subprocess.run(["git", "check-ignore", "README.md"], cwd=REPO, capture_output=True, text=True)
    assert tracked.returncode == 1  # the check itself can say "not ignored"
