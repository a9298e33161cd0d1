"""pyproject.toml declares what afr imports, and nothing it does not use.

Every ``import`` in ``afr/`` (parsed, not executed; imports inside functions count) whose top-level module is
neither the standard library nor ``afr`` must map to a declared dependency; every declared dependency must be
imported somewhere or be listed in ``USED_WITHOUT_IMPORT`` with the reason. Adding an undeclared import, or
declaring a package nobody imports, fails here.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULE_TO_DISTRIBUTION = {
    "PIL": "pillow",
    "hydra": "hydra-core",
    "sklearn": "scikit-learn",
    "yaml": "PyYAML",
}
"""Top-level module -> distribution, for the names that differ (others are the module's own name)."""

USED_WITHOUT_IMPORT = {
    "tensorboard": "torch.utils.tensorboard (curves of every run) needs it installed",
    "optuna-dashboard": "the dashboard command every campaign prints (optuna-dashboard <ledger url>)",
}
"""Declared dependencies no ``import`` in afr names, and why they are declared."""


OPTIONAL_IMPORTS = {"flwr": ("flower", "afr/export/flower_app/"), "ray": ("ray", "afr/sandbox/_ray.py")}
"""Modules only an optional extra provides: module -> (the extra that declares it, the one folder (or file) of
afr that may import it; ``afr export flower`` copies its folder out and never imports it; Ray is imported
only when ``campaign.executor=ray`` makes a RayPool)."""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """The normalized distribution names of [project] dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_normalize(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def declared_extra(extra: str) -> set[str]:
    """The normalized distribution names of one [project.optional-dependencies] extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["optional-dependencies"][extra]
    return {_normalize(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in specs}


def imported() -> dict[str, set[str]]:
    """Third-party top-level module -> the afr files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "afr").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "afr" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    deps = declared()
    missing = {
        module: sorted(files)
        for module, files in imported().items()
        if _normalize(MODULE_TO_DISTRIBUTION.get(module, module)) not in deps
        and module not in OPTIONAL_IMPORTS
    }
    assert not missing, f"imported but not declared in pyproject.toml [project] dependencies: {missing}"


def test_optional_imports_are_declared_in_their_extra_and_stay_in_their_folder() -> None:
    found = imported()
    for module, (extra, folder) in OPTIONAL_IMPORTS.items():
        assert found.get(module), f"{module} is listed as an optional import but nothing imports it"
        assert _normalize(MODULE_TO_DISTRIBUTION.get(module, module)) in declared_extra(extra), (
            module,
            extra,
        )
        outside = sorted(f for f in found[module] if not f.startswith(folder))
        assert not outside, f"{module} (the optional extra {extra!r}) imported outside {folder}: {outside}"


def test_every_declared_package_is_imported_or_explained() -> None:
    used = {_normalize(MODULE_TO_DISTRIBUTION.get(module, module)) for module in imported()}
    explained = {_normalize(name) for name in USED_WITHOUT_IMPORT}
    unused = sorted(declared() - used - explained)
    assert not unused, f"declared in pyproject.toml but never imported by afr: {unused}"


def test_the_check_sees_what_it_checks() -> None:
    # The scan itself must find the known imports (a scan that finds nothing would pass everything above).
    modules = imported()
    assert {"torch", "yaml", "scipy", "matplotlib", "hydra"} <= set(modules)
    assert "os" not in modules and "afr" not in modules
    assert {"scipy", "matplotlib", "pyyaml"} <= declared()
