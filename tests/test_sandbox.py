"""The sandbox: built-in and source recipes run in forked children, deterministically; hostile code
is contained (files, network, processes, ctypes, environment, time, memory, crashes); the zygote's
death and the pool's close leave no processes behind. One pool serves the whole module."""

from __future__ import annotations

import logging
import os
import signal
import statistics
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from afr.engine import RunResult, run_federation
from afr.profiles import load_profile_config, make_profile
from afr.recipe import FedAvg
from afr.sandbox import RUN_NICENESS, RunJob, SandboxClosed, SandboxPool
from afr.sandbox import _pool as sandbox_pool
from afr.sandbox._guard import DENIED_IMPORTS, AuditPolicy, guarded_builtins, purge_denied_modules
from afr.sandbox._isolation import install_seccomp
from afr.sandbox._zygote import classify_sigkill, load_training_profile

ROUNDS, STEPS = 2, 5
SECRETS = {
    "OPENAI_API_KEY": "sk-test-secret",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "HTTPS_PROXY": "http://x:1",
}
CLEAN_KEYS = {
    "PATH", "LANG", "HOME", "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "MALLOC_PERTURB_", "CUDA_VISIBLE_DEVICES",
    "PYTORCH_NVML_BASED_CUDA_CHECK",
}  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    config = load_profile_config("synthetic")
    config.update(rounds=ROUNDS, local_steps=STEPS)
    return config


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    # Secrets in the parent's environment while the zygote starts: none may reach it.
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SECRETS.items():
            mp.setenv(key, value)
        sandbox = SandboxPool(workers=2)
        sandbox.warm()
    yield sandbox
    sandbox.close()
    assert not any(alive(pid) for pid in sandbox.zygote_pids)


def job(cfg: dict[str, Any], source: str | None = None, **kw: Any) -> RunJob:
    kw.setdefault("recipe_name", None if source is not None else "fedavg")
    kw.setdefault("timeout_s", 60.0)
    kw.setdefault("memory_mb", 1024)
    return RunJob(f"job-{uuid.uuid4().hex[:8]}", "synthetic", cfg, recipe_source=source, **kw)


def hostile(body: str, hook: str = "local_steps") -> str:
    """A recipe whose ``hook`` runs ``body`` first (the validator is bypassed on purpose)."""
    signatures = {
        "local_steps": "(self, round_idx, client, max_steps)",
        "client_lr": "(self, round_idx, client)",
    }
    tail = "max_steps" if hook == "local_steps" else "self.lr"
    return (
        "import os\nimport sys\nimport torch\nfrom afr.recipe import FedAvg\n\n\n"
        "class Hostile(FedAvg):\n"
        f"    def {hook}{signatures[hook]}:\n"
        + textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
        + f"\n        return {tail}\n"
    )


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def stat_fields(pid: int | str) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: [0] state, [1] ppid, ... [16] nice (OSError if gone)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(stat_fields(entry)[1])
            except OSError:
                continue
            if parent == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = stat_fields(pid)[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- normal runs ---------------------------------------------------------------------------------


def test_builtin_fedavg_is_deterministic_and_matches_in_process(pool: SandboxPool, cfg) -> None:
    first, second = pool.map([job(cfg, seed=3), job(cfg, seed=3)])
    for outcome in (first, second):
        assert outcome.status == "ok", outcome.message
        assert outcome.state_dict and all(type(t) is torch.Tensor for t in outcome.state_dict.values())
        assert [r["round"] for r in outcome.curve] == [1, 2] and "val" in outcome.curve[-1]
        assert outcome.steps_per_client == [ROUNDS * STEPS] * 10
        assert 0 < outcome.seconds < outcome.wall_s
    assert same_weights(first.state_dict, second.state_dict)

    profile = make_profile("synthetic", cfg)
    local = run_federation(profile, profile.make_recipe(FedAvg), 3, validate_every=1, threads=1)
    assert same_weights(first.state_dict, local.state_dict)
    assert first.curve == local.curve
    assert (first.bytes_up, first.bytes_down) == (local.bytes_up, local.bytes_down)
    assert first.final_val == local.final_val


PROX_SOURCE = '''
from afr.recipe import FedAvg, proximal_term, scalar


class Plain(FedAvg):
    """Unchanged FedAvg: selectable by class_name."""


class MyProx(Plain):
    name = "myprox"
    mu = scalar(0.1, 1e-4, 10.0, log=True)

    def local_objective(self, task_loss, model, ctx):
        return task_loss + self.mu / 2 * proximal_term(model, ctx.global_params)
'''


def test_a_runs_wall_time_counts_from_its_start_not_from_its_wait_in_the_queue(
    pool: SandboxPool, cfg
) -> None:
    """Three jobs on two workers: the third waits for a free worker. Its ``wall_s`` (what the ledger records
    as the run's runtime) starts at its fork, so it leaves out at least the shorter run it waited for."""
    submitted = time.perf_counter()
    futures = [pool.submit(job(cfg, seed=seed)) for seed in (11, 12, 13)]
    outcomes = [f.result() for f in futures]
    elapsed = time.perf_counter() - submitted
    assert all(o.status == "ok" for o in outcomes), [o.message for o in outcomes]
    waited = min(outcomes[0].seconds, outcomes[1].seconds)  # the third forks once one of them has ended
    assert outcomes[2].wall_s <= elapsed - waited


def test_a_queued_job_starts_before_the_result_that_freed_its_worker_is_relayed(
    pool: SandboxPool, cfg
) -> None:
    """Three jobs on two workers: when the first result reaches this process, the third job already runs
    (the zygote forks it before relaying; relayed first, the fork waited behind this process's wake-up)."""
    slow = hostile(
        "import time\nif not getattr(self, 'slept', False):\n    self.slept = True\n    time.sleep(1.0)"
    )
    first, second, third = job(cfg, slow), job(cfg, slow), job(cfg, seed=5)
    seen: list[bool] = []
    futures = [pool.submit(run) for run in (first, second)]
    queued = pool.submit(third)
    for future in futures:
        # called in the reader thread as the result frame is read, i.e. in the zygote's frame order
        future.add_done_callback(lambda _f: seen.append(third.job_id in pool.child_pids()))
    assert all(f.result().status == "ok" for f in (*futures, queued))
    assert seen and seen[0], "the queued job had not started when the first result arrived"


def test_recipe_source_runs_the_last_class_or_the_named_one(pool: SandboxPool, cfg) -> None:
    prox, plain, builtin = pool.map(
        [
            job(cfg, PROX_SOURCE, scalars={"mu": 1.0}),
            job(cfg, PROX_SOURCE, class_name="Plain"),
            job(cfg),
        ]
    )
    assert prox.status == plain.status == builtin.status == "ok", (prox.message, plain.message)
    assert same_weights(plain.state_dict, builtin.state_dict)
    assert not same_weights(prox.state_dict, builtin.state_dict)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("x = 1\n", "defines no Recipe subclass"),
        (hostile("raise ValueError('boom')"), "ValueError: boom [<candidate> line 9, in local_steps"),
    ],
    ids=["syntax", "no-class", "exception"],
)
def test_broken_sources_fail_with_a_message(pool: SandboxPool, cfg, source: str, expected: str) -> None:
    outcome = pool.run(job(cfg, source))
    assert outcome.status == "failed" and expected in outcome.message, outcome.message


def test_diverging_run_fails_with_the_engines_message(pool: SandboxPool, cfg) -> None:
    outcome = pool.run(job(cfg, hostile("pass", hook="client_lr").replace("self.lr", "1e37")))
    assert outcome.status == "failed"
    assert outcome.message == "non-finite loss for client 0 in round 0"  # the TrainingFailure, verbatim


# --- containment ---------------------------------------------------------------------------------

HOSTILE = {
    "read-etc-passwd": ("open('/etc/passwd').read()", "/etc/passwd"),
    "read-proc-self": ("open('/proc/self/environ', 'rb').read()", "/proc/self/environ"),
    "read-home": ("open(os.path.join(os.environ['HOME'], 'x'))", "outside the allowed read roots"),
    "list-root": ("os.listdir('/')", "os.listdir"),
    "socket": ("import socket\nsocket.socket()", "import of 'socket'"),
    "socket-via-loaded-module": ("from afr.data import _fetch\n_fetch.http.client.socket.socket()", "socket"),
    "urlopen-via-loaded-module": (
        "from afr.data import _fetch\n_fetch.urllib.request.urlopen('http://example.com', timeout=1)",
        "urllib.Request",
    ),
    "subprocess": ("import subprocess\nsubprocess.run(['true'])", "import of 'subprocess'"),
    "os-system": ("os.system('true')", "os.system"),
    "os-popen": ("os.popen('true').read()", "subprocess"),
    "fork": ("os.fork()", "os.fork"),
    "kill-zygote": ("os.kill(os.getppid(), 9)", "os.kill"),
    "putenv": ("os.environ['X'] = '1'", "os.putenv"),
    "ctypes": ("import ctypes", "import of 'ctypes'"),
    "ctypes-via-importlib": ("import importlib\nimportlib.import_module('ctypes')", "import of '_ctypes'"),
    "ctypes-via-loaded-module": ("import numpy.ctypeslib as c\nc.ctypes.CDLL(None)", "ctypes.dlopen"),
    "settrace": ("sys.settrace(lambda *a: None)", "sys.settrace"),
    "gc-referrers": ("import gc\ngc.get_referrers(self)", "gc.get_referrers"),
    "swap-engine-class": (
        "from afr.recipe import LocalContext\nclass Fake(LocalContext): pass\n"
        "LocalContext(0, 0, {}, {}, 1).__class__ = Fake",
        "__class__",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_hooks_are_refused(pool: SandboxPool, cfg, name: str) -> None:
    body, expected = HOSTILE[name]
    outcome = pool.run(job(cfg, hostile(body)))
    assert outcome.status == "failed", (outcome.status, outcome.message)
    assert outcome.message.startswith("PermissionError: ") and expected in outcome.message
    assert "[<candidate> line" in outcome.message


def test_writing_a_file_fails_and_leaves_nothing(pool: SandboxPool, cfg, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    outcome = pool.run(job(cfg, hostile(f"open({str(target)!r}, 'w').write('x')")))
    assert outcome.status == "failed" and "PermissionError" in outcome.message
    assert not target.exists()


def test_native_writes_hit_a_read_only_filesystem(pool: SandboxPool, cfg, tmp_path: Path) -> None:
    if not pool.warm()["isolation"].get("readonly_fs"):
        pytest.skip("no CAP_SYS_ADMIN here: the zygote could not make its mounts read-only")
    target = tmp_path / "escaped.pt"  # torch's C++ writer opens the file itself: no audit event
    outcome = pool.run(job(cfg, hostile(f"torch.save(torch.zeros(2), {str(target)!r})")))
    assert outcome.status == "failed" and "Read-only file system" in outcome.message, outcome.message
    assert not target.exists()


def test_environment_is_clean(pool: SandboxPool, cfg) -> None:
    # Libraries add their own variables on import (KMP_*, TORCHINDUCTOR_*, MONAI's CUBLAS_WORKSPACE_CONFIG);
    # none may come from the parent.
    own = ("KMP_", "PYTORCH_", "TORCHINDUCTOR_", "CUBLAS_WORKSPACE_CONFIG")
    parent = {k for k in os.environ if not k.startswith(own)} | set(SECRETS)
    check = f"""
    leaked = (set(os.environ) & set({sorted(parent)!r})) - set({sorted(CLEAN_KEYS)!r})
    if leaked or 'OPENAI_API_KEY' in os.environ or 'ANTHROPIC_API_KEY' in os.environ:
        raise RuntimeError(f'leaked: {{sorted(leaked)}}')
    if os.environ['HOME'] == {os.environ.get("HOME", "")!r}:
        raise RuntimeError('HOME is the parent HOME')
    """
    outcome = pool.run(job(cfg, hostile(check)))
    assert outcome.status == "ok", outcome.message


def test_a_second_audit_hook_is_silently_not_added(pool: SandboxPool, cfg) -> None:
    # CPython swallows a hook's refusal of sys.addaudithook; what matters is the hook never runs.
    body = """
    seen = []
    sys.addaudithook(lambda event, args: seen.append(event))
    compile('1', '<x>', 'eval')
    if seen:
        raise RuntimeError('a second audit hook was installed')
    """
    outcome = pool.run(job(cfg, hostile(body)))
    assert outcome.status == "ok", outcome.message


def nice_check(expected: int) -> str:
    """A recipe body that fails unless its process runs at nice value ``expected``."""
    return f"""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice != {expected}:
        raise RuntimeError(f'nice {{nice}}, expected {expected}')
    """


def nice_of(pid: int) -> int:
    return int(stat_fields(pid)[16])


def test_runs_are_nicer_than_the_campaign_and_the_zygote_is_not(pool: SandboxPool, cfg) -> None:
    """The parent hands out the jobs: runs yield the CPU to it (RUN_NICENESS), the zygote does not."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    outcome = pool.run(job(cfg, hostile(nice_check(min(19, own + RUN_NICENESS)))))
    assert outcome.status == "ok", outcome.message
    assert pool.zygote_pid is not None and nice_of(pool.zygote_pid) == own
    with SandboxPool(workers=1, niceness=0) as same:
        outcome = same.run(job(cfg, hostile(nice_check(own))))
        assert outcome.status == "ok", outcome.message


def test_infinite_loop_times_out(pool: SandboxPool, cfg) -> None:
    outcome = pool.run(job(cfg, hostile("while True:\n    pass"), timeout_s=2.0))
    assert outcome.status == "timeout", outcome.message


def test_a_sleeping_run_hits_the_wall_clock_backstop(pool: SandboxPool, cfg) -> None:
    """CPU time ends a computing run; one that sleeps uses none and is killed at 3 * timeout_s + 30 s."""
    outcome = pool.run(job(cfg, hostile("import time\ntime.sleep(10**6)"), timeout_s=0.5))
    assert outcome.status == "timeout", outcome.message
    assert "wall-clock limit of 31.5 s" in outcome.message and "CPU time used" in outcome.message


@pytest.mark.parametrize(
    "body",
    ["torch.zeros(10**11)", "hog = []\nwhile True:\n    hog.append(bytearray(10**7))"],
    ids=["tensor", "list"],
)
def test_memory_bomb_is_stopped_and_the_pool_goes_on(pool: SandboxPool, cfg, body: str) -> None:
    outcome = pool.run(job(cfg, hostile(body), memory_mb=1024))
    assert outcome.status == "memory", (outcome.status, outcome.message)
    assert pool.run(job(cfg)).status == "ok"


def test_hard_exit_is_a_crash(pool: SandboxPool, cfg) -> None:
    outcome = pool.run(job(cfg, hostile("os._exit(3)")))
    assert outcome.status == "crashed" and "code 3" in outcome.message


# --- what the zygote holds -----------------------------------------------------------------------


def test_zygote_profiles_hold_no_test_split(cfg, shared_data: Path) -> None:
    for name, config, data_dir in (
        ("synthetic", cfg, None),
        ("heart_disease", load_profile_config("heart_disease"), str(shared_data)),
    ):
        profile = load_training_profile(name, config, data_dir)
        assert all(profile.data(part) for part in ("fit", "val", "train"))
        with pytest.raises(RuntimeError, match="dropped the test split"):
            profile.data("test")


def test_audit_policy_decisions(tmp_path: Path) -> None:
    policy = AuditPolicy([tmp_path])
    inside = str(tmp_path / "a.txt")
    policy("open", (inside, "r", os.O_RDONLY))
    policy("open", (3, "rb", os.O_RDONLY))
    policy("sys._getframe", ())
    policy("import", ("json", None, [], [], []))
    refused = [
        ("open", (inside, "w", os.O_WRONLY)),
        ("open", (inside, None, os.O_RDWR)),
        ("open", (inside, None, os.O_RDONLY | os.O_CREAT)),
        ("open", (1, "a", os.O_WRONLY)),
        ("open", ("/etc/passwd", "r", os.O_RDONLY)),
        ("open", (str(tmp_path / ".." / "x"), "r", os.O_RDONLY)),
        ("socket.getaddrinfo", ("example.com", 80)),
        ("subprocess.Popen", ("true", ["true"], None, None)),
        ("os.exec", ("/bin/sh", ["sh"], None)),
        ("ctypes.addressof", (object(),)),
        ("shutil.rmtree", (inside,)),
        ("resource.setrlimit", (0, (1, 1))),
        ("import", ("ctypes.util", None, [], [], [])),
        ("sys.addaudithook", ()),
    ]
    for event, args in refused:
        with pytest.raises(PermissionError, match="sandbox refused"):
            policy(event, args)
    if not os.path.exists(os.path.join(tmp_path, "link")):
        os.symlink("/etc", tmp_path / "link")
    with pytest.raises(PermissionError):
        policy("open", (str(tmp_path / "link" / "passwd"), "r", os.O_RDONLY))


def test_guarded_import_and_purge() -> None:
    table = guarded_builtins()
    assert table["__import__"]("json").__name__ == "json"
    with pytest.raises(PermissionError):
        table["__import__"]("socket")
    modules = {"ctypes": 1, "ctypes.util": 2, "json": 3}
    assert sorted(purge_denied_modules(modules=modules)) == ["ctypes", "ctypes.util"] and modules == {
        "json": 3
    }
    assert {"ctypes", "socket", "subprocess", "multiprocessing"} <= DENIED_IMPORTS


# --- the processes -------------------------------------------------------------------------------


def test_killing_the_zygote_mid_job_crashes_the_job_and_restarts(pool: SandboxPool, cfg) -> None:
    pool.warm()
    zygote = pool.zygote_pid
    assert zygote is not None
    future = pool.submit(job(cfg, hostile("while True:\n    pass"), timeout_s=30.0))
    assert wait_until(lambda: children_of(zygote)), "the child never started"
    (child,) = children_of(zygote)
    os.kill(zygote, signal.SIGKILL)
    outcome: RunResult = future.result(timeout=10)
    assert outcome.status == "crashed" and "zygote died" in outcome.message
    assert wait_until(lambda: not alive(child), timeout=5), "the child outlived its zygote"
    after = pool.run(job(cfg))
    assert after.status == "ok", after.message
    assert pool.zygote_pid not in (None, zygote)


def test_an_outside_sigkill_of_a_worker_is_a_kill_not_out_of_memory(pool: SandboxPool, cfg) -> None:
    """A SIGKILL the sandbox did not send, with no OOM-kill counted and memory far from the limit, is
    recorded as a kill from outside (``crashed``), not as the candidate's memory use."""
    run = job(cfg, hostile("while True:\n    pass"), timeout_s=30.0)
    future = pool.submit(run)
    assert wait_until(lambda: run.job_id in pool.child_pids(), timeout=60), "the child never started"
    child = pool.child_pids()[run.job_id]
    assert child in children_of(pool.zygote_pid or -1)
    os.kill(child, signal.SIGKILL)
    outcome: RunResult = future.result(timeout=30)
    assert outcome.status == "crashed", (outcome.status, outcome.message)
    assert "killed by SIGKILL from outside the sandbox (peak RSS" in outcome.message, outcome.message
    assert "MiB limit)" in outcome.message and "OOM" not in outcome.message
    assert pool.run(job(cfg)).status == "ok"


def test_a_sigkill_is_out_of_memory_only_on_evidence() -> None:
    """The OOM killer's counter rising, or a peak RSS near the limit, makes it ``memory``; else a kill."""
    assert classify_sigkill(400, 1400, 3, 3)[0] == "crashed"
    assert classify_sigkill(400, 1400, None, None)[0] == "crashed"  # no counter readable: no evidence
    status, message = classify_sigkill(400, 1400, 3, 4)
    assert status == "memory" and "OOM-kill counter rose" in message and "400 MiB of 1400 MiB" in message
    assert classify_sigkill(1300, 1400, None, None)[0] == "memory"


def test_close_leaves_no_processes(cfg) -> None:
    sandbox = SandboxPool(workers=1)
    sandbox.warm()
    zygote = sandbox.zygote_pid
    assert zygote is not None
    running = sandbox.submit(job(cfg, hostile("while True:\n    pass"), timeout_s=30.0))
    queued = sandbox.submit(job(cfg))
    assert wait_until(lambda: children_of(zygote))
    (child,) = children_of(zygote)
    sandbox.close()
    # Closed, not crashed: the runs were interrupted and have no outcome (a campaign runs them again).
    for future in (running, queued):
        with pytest.raises(SandboxClosed, match="closed before the run finished"):
            future.result(timeout=5)
    with pytest.raises(SandboxClosed):
        sandbox.submit(job(cfg))
    assert not any(alive(pid) for pid in sandbox.zygote_pids) and wait_until(lambda: not alive(child), 5)
    assert zygote not in children_of(os.getpid())
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.submit(job(cfg))


def test_per_job_overhead(pool: SandboxPool, cfg) -> None:
    pool.warm()
    outcomes = [pool.run(job(cfg, seed=s)) for s in range(10)]
    assert all(o.ok for o in outcomes)
    overhead_ms = [1000 * (o.wall_s - o.seconds) for o in outcomes]
    print(
        f"\nsandbox overhead per job (wall - training) over {len(outcomes)} jobs: "
        f"median {statistics.median(overhead_ms):.1f} ms, min {min(overhead_ms):.1f} ms, "
        f"max {max(overhead_ms):.1f} ms; training median "
        f"{1000 * statistics.median(o.seconds for o in outcomes):.1f} ms"
    )


# --- isolation without root: what was applied is recorded; what was not is logged once ------------


def test_isolation_is_recorded(pool: SandboxPool) -> None:
    isolation = pool.warm()["isolation"]
    assert {"user_namespace", "no_network", "readonly_fs", "seccomp", "malloc_perturb"} <= set(isolation)
    assert isolation["user_namespace"] is (os.geteuid() != 0 and isolation["no_network"])


def test_seccomp_degrades_to_a_reason_without_libseccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # the import fails: no filter is loaded here
    reason = install_seccomp()
    assert isinstance(reason, str) and "unavailable" in reason


def test_missing_isolation_is_logged_once(
    pool: SandboxPool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_pool, "_warned_isolation", False)
    weak = {"no_network": True, "readonly_fs": True, "seccomp": False, "seccomp_error": "pyseccomp missing"}
    with caplog.at_level(logging.WARNING, logger="afr.sandbox"):
        pool._check_isolation(weak)
        pool._check_isolation({})
    warnings = [r.getMessage() for r in caplog.records if r.name == "afr.sandbox"]
    assert len(warnings) == 1 and "seccomp" in warnings[0] and "pyseccomp missing" in warnings[0], warnings


def test_freed_memory_perturbation_can_be_turned_off() -> None:
    with SandboxPool(workers=1, perturb_freed_memory=False) as sandbox:
        assert sandbox.warm()["isolation"]["malloc_perturb"] is False
