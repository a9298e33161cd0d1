"""The package's layering holds: the import-linter contracts in pyproject.toml (``[tool.importlinter]``)
pass on afr, and fail, naming the broken contract, when a forbidden import is added to a copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"

# import-linter's own command line (`lint-imports`), run with this interpreter so that it does not depend
# on the console script's shebang.
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def contract_name(contract_id: str) -> str:
    """The name of the contract with ``id = contract_id`` in pyproject.toml (what import-linter prints)."""
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    return next(contract["name"] for contract in contracts if contract.get("id") == contract_id)


def lint_imports(project: Path, extra_path: Path | None = None) -> tuple[int, str]:
    """Run the contracts of ``project``/pyproject.toml from ``project``; the exit code and the output with
    whitespace collapsed (rich wraps long lines)."""
    env = {**os.environ, "COLUMNS": "200"}
    if extra_path is not None:
        # PYTHONPATH comes before the editable install's finder (appended to sys.meta_path), so the copy
        # of afr in extra_path is the one import-linter finds and analyses.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_path), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo", str(project / "pyproject.toml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_layering_contracts_hold() -> None:
    code, output = lint_imports(ROOT)
    assert code == 0, output
    assert "BROKEN" not in output and " 0 broken" in output, output


@pytest.mark.parametrize(
    ("module_file", "forbidden_import", "importer", "imported", "contract_id"),
    [
        ("agents/evolve.py", "import afr.sandbox", "afr.agents.evolve", "afr.sandbox", "agents"),
        # Inside a function: lazy imports count too.
        ("engine/_loop.py", "def _f():\n    import afr.ledger", "afr.engine._loop", "afr.ledger", "engine"),
    ],
    ids=["agents-import-sandbox", "engine-imports-ledger"],
)
def test_a_forbidden_import_breaks_the_contracts(
    tmp_path: Path, module_file: str, forbidden_import: str, importer: str, imported: str, contract_id: str
) -> None:
    shutil.copytree(ROOT / "afr", tmp_path / "afr", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    target = tmp_path / "afr" / module_file
    source = target.read_text(encoding="utf-8").rstrip("\n") + "\n\n\n" + forbidden_import + "\n"
    target.write_text(source, encoding="utf-8")
    import_line = source.splitlines().index(forbidden_import.splitlines()[-1]) + 1

    code, output = lint_imports(tmp_path, extra_path=tmp_path)

    assert code != 0, output
    assert f"{contract_name(contract_id)} BROKEN" in output, output
    assert f"{contract_name('layers')} BROKEN" in output, output
    # The line number is that of the added import: the copy, not the repository's afr, was analysed.
    assert f"{importer} -> {imported} (l.{import_line})" in output, output
