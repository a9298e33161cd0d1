"""The adversarial suite also passes as an unprivileged user (issue 14, done-when 1).

Run as root (as CI does), this test re-runs ``tests/adversarial`` as ``nobody`` (uid/gid 65534, no groups,
no capabilities): the sandbox must then seal itself through a user namespace and seccomp instead of root's
namespaces. Run unprivileged, the ordinary run of ``tests/adversarial`` is that check and this test skips.

The Python install or the clone may sit under a directory ``nobody`` cannot enter (pyenv under ``/root``, a
``mktemp -d`` folder, mode 0700): the re-run then happens in a private mount namespace in which that directory
is an empty world-enterable tmpfs with only the needed children bound back into it. Nothing outside that
namespace changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
GUARD_TIMEOUT_S = 3600  # a hung run must not hang CI; not a timing assertion


def _blocked(paths: list[Path]) -> dict[Path, list[Path]]:
    """Directories above ``paths`` that others may not enter (pyenv under ``/root``, a ``mktemp -d`` clone
    under ``/tmp``), each with its children on the way to ``paths``; outermost first."""
    found: dict[Path, list[Path]] = {}
    for path in paths:
        parts = path.resolve().parts
        for i in range(1, len(parts) - 1):
            here, inside = Path(*parts[: i + 1]), Path(*parts[: i + 2])
            if not os.stat(here).st_mode & 0o001 and inside not in found.setdefault(here, []):
                found[here].append(inside)
    return dict(sorted(found.items(), key=lambda item: len(item[0].parts)))


def _expose(blocked: dict[Path, list[Path]], save: Path, first: int) -> list[str]:
    """Shell lines that cover each blocked directory with an empty world-enterable tmpfs and bind back only
    the children on the way (saved first under ``save``, since the tmpfs hides them)."""
    lines, k = [], first
    for top, insides in blocked.items():
        saved = []
        for inside in insides:
            lines += [f"mkdir -p '{save / str(k)}'", f"mount --bind '{inside}' '{save / str(k)}'"]
            saved.append((inside, save / str(k)))
            k += 1
        lines.append(f"mount -t tmpfs -o mode=755 afr-unprivileged '{top}'")
        for inside, kept in saved:
            lines += [f"mkdir -p '{inside}'", f"mount --bind '{kept}' '{inside}'"]
    return lines


def _script(blocked: dict[Path, list[Path]], save: Path, keep: list[Path], cwd: Path) -> str:
    """Shell run as root in a private mount namespace: expose the Python install and the clone, give the run
    a private ``/tmp`` (the suite's canary path is fixed, and other runs on the machine use it too) with
    ``keep`` bound back into it, then drop to nobody."""
    outside = {top: ins for top, ins in blocked.items() if not top.is_relative_to("/tmp")}
    under_tmp = {top: ins for top, ins in blocked.items() if top.is_relative_to("/tmp")}
    lines = ["set -e", *_expose(outside, save, 0)]
    # The shell's working directory keeps the real /tmp reachable (as .) once a tmpfs covers /tmp; mount must
    # not canonicalise ./x, which would resolve it in the new, empty /tmp.
    lines += ["cd /tmp", "mount -t tmpfs -o mode=1777 afr-private-tmp /tmp"]
    for path in keep:
        rel = path.relative_to("/tmp")
        lines += [f"mkdir -p '/tmp/{rel}'", f"mount --no-canonicalize --rbind './{rel}' '/tmp/{rel}'"]
    lines += _expose(under_tmp, save, len(outside) * 100 + 100)
    lines += [
        f"cd '{cwd}'",
        f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --inh-caps=-all "$@"',
    ]
    return "\n".join(lines)


def _under_tmp(paths: list[Path]) -> list[Path]:
    """The top folders under /tmp that hold ``paths`` (the clone, the venv, the work folder in CI)."""
    tops = {
        Path("/tmp", p.resolve().relative_to("/tmp").parts[0])
        for p in paths
        if p.resolve().is_relative_to("/tmp")
    }
    return sorted(tops)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux namespaces and setpriv")
@pytest.mark.timeout(GUARD_TIMEOUT_S)
def test_adversarial_suite_passes_as_nobody(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the ordinary run of tests/adversarial is this check")
    missing = [tool for tool in ("unshare", "setpriv", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"cannot drop to an unprivileged user: {', '.join(missing)} not installed (util-linux)")
    work = Path(tempfile.mkdtemp(prefix="afr-nobody-"))
    try:
        for name in ("home", "tmp", "save"):
            (work / name).mkdir()
            os.chown(work / name, NOBODY, NOBODY)
        os.chmod(work, 0o755)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"),
            "PYTHONDONTWRITEBYTECODE": "1",
            # The clone belongs to root: let git read it as nobody.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
        }
        command = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            _script(
                _blocked([ROOT, Path(sys.prefix), Path(sys.base_prefix)]),
                work / "save",
                _under_tmp([work, ROOT, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable)]),
                ROOT,
            ),
            "afr-as-nobody",
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--basetemp={work / 'tmp' / 'pytest'}", "tests/adversarial",
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=GUARD_TIMEOUT_S
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
    assert done.returncode == 0, f"tests/adversarial failed as nobody (exit {done.returncode}):\n{tail}"
    assert " passed" in tail and "failed" not in tail.splitlines()[-1], tail
