"""Finding profiles without a registry: each YAML names its class with Hydra's ``_target_``.

A profile is one package (``<package>/{__init__,profile,dataset,model,metric,fetch}.py``, the class
defined in ``profile.py`` and re-exported by the package) plus one YAML, ``<conf dir>/profile/<name>.yaml``,
whose ``_target_`` is the dotted path of the class. The shipped YAMLs live in ``afr/conf/profile``;
``search_path`` adds config folders laid out like a Hydra search-path entry (``<dir>/profile/<name>.yaml``),
and, as in Hydra, the shipped folder wins when two define the same name. A profile package outside
``afr`` must be importable (``PYTHONPATH``); :func:`import_root` tells the sandbox where it lives.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._base import Profile

__all__ = [
    "PROFILE_MODULES",
    "CONF_DIR",
    "config_dirs",
    "profile_names",
    "budget_presets",
    "load_profile_config",
    "profile_class",
    "make_profile",
    "import_root",
]

PROFILE_MODULES = ("profile", "dataset", "model", "metric", "fetch")
"""The modules every profile package has (besides ``__init__``), as FLamby's datasets do."""

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
"""The shipped config folder (the first entry of every search path)."""

_GROUP = "profile"
_TARGET_FIX = (
    "set `_target_: <package>.<Class>` to a Profile subclass whose package is importable (PYTHONPATH)"
)

SearchPath = Iterable[str | Path]


def config_dirs(search_path: SearchPath = ()) -> list[Path]:
    """The shipped config folder, then each ``search_path`` entry (``file://``, ``pkg://`` as in Hydra)."""
    dirs = [CONF_DIR]
    for entry in search_path:
        text = str(entry)
        if text.startswith("pkg://"):
            spec = importlib.util.find_spec(text.removeprefix("pkg://").replace("/", "."))
            locations = list(spec.submodule_search_locations or []) if spec is not None else []
            if not locations:
                raise ConfigError(f"config search path entry {text!r} names no importable package")
            dirs.append(Path(locations[0]))
        else:
            dirs.append(Path(text.removeprefix("file://")).expanduser())
    return dirs


def profile_names(search_path: SearchPath = ()) -> list[str]:
    """Every profile with a YAML on the search path (shipped, then ``search_path``), sorted."""
    return sorted(
        {p.stem for d in config_dirs(search_path) for p in (d / _GROUP).glob("*.yaml") if p.is_file()}
    )


def budget_presets(name: str, search_path: SearchPath = ()) -> dict[str, dict[str, Any]]:
    """The budget presets of profile ``name``: ``{preset: values}`` from ``<conf dir>/budget_preset/<preset>/
    <name>.yaml`` (what ``budget=<preset>`` merges over the profile), ``smoke`` first, then by name; the
    shipped folder wins when two define the same preset, as in Hydra."""
    found: dict[str, dict[str, Any]] = {}
    for folder in reversed(config_dirs(search_path)):
        for path in (folder / "budget_preset").glob(f"*/{name}.yaml"):
            if path.is_file():
                found[path.parent.name] = _read_yaml(path)
    return {key: found[key] for key in sorted(found, key=lambda key: (key != "smoke", key))}


def _profile_yaml(name: str, search_path: SearchPath) -> Path:
    search_path = list(search_path)
    if isinstance(name, str) and name and "/" not in name and "\\" not in name:
        for folder in config_dirs(search_path):
            if (folder / _GROUP / f"{name}.yaml").is_file():
                return folder / _GROUP / f"{name}.yaml"
    known = ", ".join(profile_names(search_path))
    raise ConfigError(f"unknown profile {name!r}", where="profile=", fix=f"use one of {known}")


def _read_yaml(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def load_profile_config(name: str, search_path: SearchPath = ()) -> dict[str, Any]:
    """The profile's YAML as a plain dict (for use outside the Hydra CLI)."""
    return _read_yaml(_profile_yaml(name, search_path))


def _target_class(target: Any, where: str) -> type[Profile]:
    """The Profile subclass ``target`` (a ``_target_`` value) names; ``ConfigError`` at ``where`` if none."""
    from hydra.utils import get_class

    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"the profile config names no class (_target_ is {target!r})", where=where, fix=_TARGET_FIX
        )
    hydra_log = logging.getLogger("hydra.utils")
    was_disabled, hydra_log.disabled = hydra_log.disabled, True  # it would log the error a second time
    try:
        cls = get_class(target)
    except Exception as exc:  # an import error of any kind inside the profile's package
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"cannot import the profile class {target!r}: {type(cause).__name__}: {cause}",
            where=where,
            fix=_TARGET_FIX,
        ) from exc
    finally:
        hydra_log.disabled = was_disabled
    if not (isinstance(cls, type) and issubclass(cls, Profile)):
        raise ConfigError(f"_target_ {target!r} is not a Profile subclass", where=where, fix=_TARGET_FIX)
    return cls


def profile_class(name: str, search_path: SearchPath = ()) -> type[Profile]:
    """The class the YAML of ``name`` names with ``_target_`` (imported now)."""
    path = _profile_yaml(name, search_path)
    return _target_class(_read_yaml(path).get("_target_"), f"{path}: _target_")


def make_profile(
    name: str, cfg: Mapping[str, Any] | None = None, data_dir: str | Path | None = None, **overrides: Any
) -> Profile:
    """Build a profile from its shipped YAML (or ``cfg``), with keyword overrides.

    The class is ``cfg``'s ``_target_`` when ``cfg`` has one (a config composed by Hydra from any search
    path), else the one the YAML of ``name`` names.
    """
    config = dict(cfg) if cfg is not None else load_profile_config(name)
    config.update(overrides)
    if config.get("_target_") is not None:
        cls = _target_class(config["_target_"], f"profile {name!r}: _target_")
    else:
        cls = profile_class(name)
    return cls(config, data_dir)


def import_root(profile_cls: type[Profile]) -> str | None:
    """The ``sys.path`` entry a fresh interpreter needs to import ``profile_cls`` (None for afr's own)."""
    top = profile_cls.__module__.partition(".")[0]
    if top == __name__.partition(".")[0]:
        return None
    module = sys.modules.get(top)
    spec = module.__spec__ if module is not None else importlib.util.find_spec(top)
    if spec is None:
        raise ConfigError(f"cannot locate the package {top!r} of profile class {profile_cls.__qualname__}")
    if spec.submodule_search_locations:  # a package: its folder's parent
        return str(Path(next(iter(spec.submodule_search_locations))).resolve().parent)
    if spec.origin is None:
        raise ConfigError(f"cannot locate the module {top!r} of profile class {profile_cls.__qualname__}")
    return str(Path(spec.origin).resolve().parent)
