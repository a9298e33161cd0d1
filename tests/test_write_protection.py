"""Write-protected parameters (``afr/engine/_integrity.py``): in sandboxed runs of large models the engine
keeps the parameters on read-only pages instead of comparing them after every hook. Same results as the
comparison, for every shipped recipe on both training paths; a recipe that writes into them fails with a
message naming the hook, never a silent change. Engine-level runs with protection go to a subprocess: a
write into read-only pages kills the process that makes it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from afr.engine import run_federation
from afr.profiles.femnist import Femnist
from afr.recipe import FedAvg
from afr.sandbox import RunJob, SandboxPool
from tests.test_leaf import femnist_cfg, tiny_femnist

ROOT = Path(__file__).resolve().parents[1]

_PAGES = """
import json, mmap, sys
from afr.engine import _integrity, run_federation
from afr.profiles import load_profile_config, make_profile
from afr.recipe import RECIPES, FedAvg
from afr.sandbox._isolation import MARKER_BYTES, PageProtection, load_libc

_integrity.PROTECT_MIN_BYTES = 0  # protect even synthetic's 610 parameters


class Pages(PageProtection):  # the sandbox's own protection, counting protects, echoing labels

    def __init__(self):
        super().__init__(load_libc(), mmap.mmap(-1, MARKER_BYTES))
        self.protects = 0
        self.labels = []

    def protect(self, regions):
        self.protects += 1
        assert all(address % _integrity.PAGE_BYTES == 0 for address, _ in regions)
        super().protect(regions)

    def label(self, text):
        super().label(text)
        self.labels.append(text)
        print("label:", text, file=sys.stderr, flush=True)


cfg = load_profile_config("synthetic")
cfg.update(rounds=2, local_steps=3)
profile = make_profile("synthetic", cfg)
"""

_EQUAL = (
    _PAGES
    + """
out = {}
for name, cls in RECIPES.items():
    for batched in (True, False):
        compared = run_federation(profile, profile.make_recipe(cls, {}), 0, batched=batched)
        pages = Pages()
        protected = run_federation(profile, profile.make_recipe(cls, {}), 0, batched=batched, pages=pages)
        out[f"{name} {protected.engine_path}"] = {
            "same": all(
                compared.state_dict[k].equal(protected.state_dict[k]) for k in compared.state_dict
            ) and compared.curve == protected.curve,
            "protects": pages.protects,
            "labels": len(pages.labels),
        }
print(json.dumps(out))
"""
)

_WRITER = (
    _PAGES
    + """
import torch


class Writer(FedAvg):
    def local_objective(self, task_loss, model, ctx):
        if ctx.client == 1 and ctx.step == 2:
            with torch.no_grad():
                next(iter(model.parameters())).add_(1.0)
        return task_loss


run_federation(profile, profile.make_recipe(Writer, {}), 0, batched={batched}, pages=Pages())
print("finished")
"""
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def test_protected_runs_equal_compared_runs_for_every_shipped_recipe() -> None:
    done = _python(_EQUAL)
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout.splitlines()[-1])
    assert len(runs) == 14 and {key.split()[1] for key in runs} == {"batched", "per-client"}, runs
    for key, run in runs.items():
        assert run["same"], key
        # protected once at sealing and again after every write of the engine; labelled at every hook
        assert run["protects"] > 2 and run["labels"] > 2, (key, run)


def test_a_write_into_protected_parameters_kills_the_run_at_once() -> None:
    done = _python(_WRITER.replace("{batched}", "False"))
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "finished" not in done.stdout
    last = [line for line in done.stderr.splitlines() if line.startswith("label:")][-1]
    assert last == "label: client 1, round 0: the recipe's local_objective (or what it returned)", last


def test_without_pages_the_same_write_is_caught_by_the_comparison() -> None:
    done = _python(_WRITER.replace("{batched}", "False").replace("pages=Pages()", "pages=None"))
    assert done.returncode == 1 and "TrainingFailure" in done.stderr, done.stderr[-2000:]
    assert "changed parameter" in done.stderr and "in place" in done.stderr


def test_on_the_batched_path_the_hook_writes_into_its_client_row_which_is_compared() -> None:
    # The batched path hands local_objective the client's row of the stacked parameters, not the live
    # model's: the stack's own comparison catches the write (small models only take this path).
    done = _python(_WRITER.replace("{batched}", "True"))
    assert done.returncode == 1 and "TrainingFailure" in done.stderr, done.stderr[-2000:]
    assert "client 1's copy" in done.stderr


# --- in the sandbox: LEAF's CNN (6.6 M parameters) is protected without any setting ----------------------

HOSTILE = {  # name: (body, the line of the candidate file that writes)
    "mul_ under no_grad": ("with torch.no_grad():\n    next(iter(model.parameters())).mul_(0.5)", 9),
    ".data.zero_()": ("next(iter(model.parameters())).data.zero_()", 8),
}


def _writer_source(body: str) -> str:
    return (
        "import torch\nfrom afr.recipe import FedAvg\n\n\nclass Writer(FedAvg):\n"
        "    def local_objective(self, task_loss, model, ctx):\n"
        "        if ctx.step == 1:\n" + textwrap.indent(body, " " * 12) + "\n        return task_loss\n"
    )


@pytest.fixture(scope="module")
def femnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("femnist")
    tiny_femnist(folder, writers=12)
    return folder


def test_sandboxed_large_model_runs_protected_with_the_same_weights(femnist_dir: Path) -> None:
    cfg = femnist_cfg(rounds=1, local_steps=2, max_samples_per_user=None)
    cfg["grouping"] = {**cfg["grouping"], "clients": 2}
    jobs = {"fedavg": None, **{name: _writer_source(body) for name, (body, _) in HOSTILE.items()}}
    with SandboxPool(workers=1) as pool:
        results = {
            name: pool.submit(
                RunJob(
                    f"wp-{uuid.uuid4().hex[:6]}",
                    "femnist",
                    cfg,
                    recipe_name="fedavg" if source is None else None,
                    recipe_source=source,
                    timeout_s=300,
                    memory_mb=4096,
                    data_dir=str(femnist_dir),
                )
            ).result()
            for name, source in jobs.items()
        }
    benign = results.pop("fedavg")
    assert benign.ok, benign.message
    profile = Femnist(cfg, femnist_dir)
    compared = run_federation(profile, profile.make_recipe(FedAvg, {}), 0)  # in-process: compared, not paged
    assert compared.state_dict.keys() == benign.state_dict.keys()
    assert all(torch.equal(compared.state_dict[k], benign.state_dict[k]) for k in compared.state_dict)
    for name, result in results.items():
        assert result.status == "failed", (name, result.status, result.message)
        assert result.message.startswith("client 0, round 0: the recipe's local_objective"), result.message
        # faulthandler's stack, written into the result pipe, gives the candidate's line
        site = (
            f"read-only memory (killed by SIGSEGV) [<candidate> line {HOSTILE[name][1]}, in local_objective]"
        )
        assert site in result.message, result.message
