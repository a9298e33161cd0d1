"""Parameter integrity by content: nothing but the engine's own optimiser step changes the model.

Three mechanisms, used together by the federated loop (``_loop.py``):

* :class:`ParamSeal` — a bit-exact snapshot of the live model's parameters and buffers plus their identity
  (module tree, ``Parameter`` objects, storage pointer, dtype, shape, strides), compared after every call of
  a recipe hook. Version counters are not enough: ``unsafe_split``/``unsafe_chunk`` views and module-wide
  conversions (``half``, ``to_empty``…) write without bumping them; the content cannot be changed unseen.
* :class:`ModelView` — what ``local_objective`` receives instead of the model: an allow-list of read-only
  module methods (``parameters``, ``named_parameters``, …) and submodule/parameter attributes. Methods that
  change dtype, device or storage (``half``, ``float``, ``double``, ``to``, ``to_empty``, ``apply``…),
  attribute and item assignment are refused with a :class:`TrainingFailure` naming the method.
* :func:`private_copies` / :func:`changed_entries` — every tensor a hook receives is a clone sharing no
  storage with the server or another client; the read-only ones are compared with the engine's after the hook.

Why the seal is complete: candidate code runs only inside the engine's calls of recipe hooks (the recipe has
no other entry point: no autograd or module hooks, threads or callbacks pass the validator, and the engine
only calls hooks). Between two hook calls only engine code runs, and the engine changes the model only by
``load`` (broadcast), the forward pass (buffers) and its SGD step, each followed by a refresh of the seal.
So if the model matches the seal after every hook returns, nothing but the engine changed it. The check
covers every way a tensor can change: its content (compared bit for bit through integer views, so NaN and
-0.0 compare exactly), its storage, dtype, shape and strides (``set_``, ``.data =``, ``resize_``,
``as_strided_``, module conversions), its gradient (a planted ``.grad`` would be an extra step at the next
``backward``) and the module tree itself (a replaced, added or removed parameter, buffer or submodule).

Write protection (sandboxed runs of large models): comparing the content costs a read of the parameters
and their snapshot after every local step and a copy after every SGD step — on LEAF's 6.6 M-parameter CNN
40 % of a step (measured: 6.7 s vs 4.0 s for two femnist rounds). Given a :class:`PageGuard` (the sandbox's
``mprotect``), the seal instead lays the parameters out on whole pages of their own and keeps those pages
read-only except inside the engine's own writes (:meth:`ParamSeal.writable`: loading weights, the SGD
step). That is stronger than the comparison, not only cheaper: a write at any time, by a hook or by
anything it returned, kills the process (SIGSEGV), which the sandbox reports as the recipe's failure. The
identity, storage, dtype, gradient and tree checks stay; buffers (running statistics, which the forward
pass writes) are still compared. Only in a sandboxed child: in any other process the SIGSEGV would kill it.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..errors import TrainingFailure

__all__ = ["ParamSeal", "PageGuard", "ModelView", "private_copies", "changed_entries", "identical"]

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(t: Tensor) -> Tensor:
    """An integer view of ``t``'s bytes (same storage): equality of bits, not of values."""
    t = t.detach()
    if t.dtype.is_floating_point or t.dtype.is_complex:
        return t.view(_BITS[t.element_size()]) if t.element_size() in _BITS else t
    return t


def identical(a: Tensor, b: Tensor) -> bool:
    """Same dtype, shape and bits (NaN equals the same NaN, -0.0 differs from 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def private_copies(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """A fresh dict of clones: storage shared with nothing else."""
    return {k: v.detach().clone() for k, v in tensors.items()}


def changed_entries(
    given: dict[str, Tensor], copies: dict[str, Tensor], reference: dict[str, Tensor], label: str
) -> str:
    """What a hook changed in the read-only dict ``label`` it received (``copies``, which ``given`` should
    still be): replaced, added or removed entries, or contents differing from ``reference``; "" if nothing."""
    if not isinstance(given, dict) or given.keys() != copies.keys():
        return f"added or removed entries of {label}"
    for key, copy in copies.items():
        if given[key] is not copy:
            return f"replaced {label}[{key!r}]"
        if not identical(copy, reference[key]):
            return f"wrote into {label}[{key!r}] in place"
    return ""


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PROTECT_MIN_BYTES = 256 * 1024
"""Parameters smaller than this are compared, not write-protected: two ``mprotect`` calls per step cost
about what comparing 256 KiB does, and the shipped small models (heart_disease, tcga_brca, synthetic) stay
on the comparison."""


class PageGuard(Protocol):
    """Makes whole pages read-only and writable again (the sandbox's, through ``mprotect``); ``label`` says
    what runs now, for the message if a write into read-only pages kills the process."""

    def protect(self, regions: list[tuple[int, int]]) -> None: ...

    def unprotect(self, regions: list[tuple[int, int]]) -> None: ...

    def label(self, text: str) -> None: ...


def _unprotect(pages: PageGuard | None, regions: list[tuple[int, int]]) -> None:
    if pages is not None and regions:
        pages.unprotect(regions)
        pages.label("")


def _meta(t: Tensor) -> tuple[Any, ...]:
    return (t.data_ptr(), t.dtype, t.shape, t.stride())


_ALLOCATOR_BYTES = 64
"""Bytes at each end of an allocation the C allocator may write when it is freed (its free-list links at
the start, the next chunk's size field at the end): never inside a protected page."""


def _paged(numel: int, dtype: torch.dtype) -> tuple[Tensor, tuple[int, int]]:
    """A flat CPU tensor that starts on a page boundary, and the (address, length) of the whole pages it
    covers — strictly inside its own allocation, clear of the allocator's bookkeeping at both ends, so
    protecting them touches no other object's memory. The flat is a view: its base stays alive with it."""
    size = torch.empty((), dtype=dtype).element_size()
    length = -(-numel * size // PAGE_BYTES) * PAGE_BYTES
    # slack before (to reach a boundary past the allocator's bytes) and after (PAGE_BYTES: a multiple of size)
    storage = torch.empty((length + 2 * PAGE_BYTES) // size, dtype=dtype)
    first = storage.data_ptr() + _ALLOCATOR_BYTES
    address = first + (-first % PAGE_BYTES)
    start = (address - storage.data_ptr()) // size
    return storage[start : start + numel], (address, length)


def _flatten(tensors: list[Tensor], paged: bool = False) -> tuple[list[Tensor], list[tuple[int, int]]]:
    """Rebind ``tensors`` (same objects, same values) as views of one flat tensor per dtype and device:
    the seal then compares and copies each group in one call instead of one per tensor. ``paged``: CPU
    flats on pages of their own, whose regions come back second (for :class:`PageGuard`)."""
    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    flats, regions = [], []
    for (dtype, device), members in groups.items():
        numel = sum(t.numel() for t in members)
        if paged and device.type == "cpu":
            flat, region = _paged(numel, dtype)
            regions.append(region)
        else:
            flat = torch.empty(numel, dtype=dtype, device=device)
        offset = 0
        with torch.no_grad():
            for t in members:
                view = flat[offset : offset + t.numel()].view(t.shape)
                view.copy_(t)
                t.data = view
                offset += t.numel()
        flats.append(flat)
    return flats, regions


class ParamSeal:
    """A bit-exact seal over ``model``'s parameters and buffers; :meth:`verify` after every recipe hook.

    The engine refreshes the seal after its own writes (:meth:`refresh` after loading weights,
    :meth:`refresh_params` after each SGD step, :meth:`refresh_buffers` after each forward pass).
    Sealing rebinds the parameters (and buffers) as views of one flat tensor per dtype, so that a check is
    one ``torch.equal`` and a refresh one ``copy_`` whatever the number of tensors (values unchanged).

    ``pages`` (sandboxed children only) and parameters of at least ``protect_min_bytes`` (default
    :data:`PROTECT_MIN_BYTES`, read at the call) on the CPU: the
    parameters are write-protected instead of compared (module docstring); the engine then writes them only
    inside :meth:`writable`. :attr:`protected` says whether that is the case.
    """

    def __init__(
        self,
        model: nn.Module,
        pages: PageGuard | None = None,
        protect_min_bytes: int | None = None,
    ) -> None:
        self.where = ""
        """Context for messages, set by the engine (``client 3, round 2``)."""
        tables = [
            table
            for module in model.modules()
            for table in (module._modules, module._parameters, module._buffers)
        ]
        # named_parameters/named_buffers and the forward pass see exactly what these dicts hold
        self._sizes = [(table, len(table)) for table in tables]
        self._entries = [(table, key, value) for table in tables for key, value in table.items()]
        params, buffers = list(model.named_parameters()), list(model.named_buffers())
        self._names = [n for n, _ in params + buffers]
        self._live = [t for _, t in params + buffers]
        self._params = [p for _, p in params]
        self._num_params = len(params)
        param_bytes = sum(p.numel() * p.element_size() for p in self._params if p.device.type == "cpu")
        least = PROTECT_MIN_BYTES if protect_min_bytes is None else protect_min_bytes
        paged = pages is not None and param_bytes >= least
        flats, self._regions = _flatten(self._params, paged=paged)
        self._pages = pages if self._regions else None
        self.protected = self._pages is not None
        """The parameters (on the CPU) are read-only pages outside :meth:`writable`; not compared."""
        # Compared: the parameters not write-protected (all of them without pages) and every buffer.
        self._param_flats = [f for f in flats if f.device.type != "cpu"] if self.protected else flats
        self._buffer_flats, _ = _flatten([b for _, b in buffers])
        self._meta = [_meta(t) for t in self._live]
        self._param_snaps = [f.clone() for f in self._param_flats]
        self._buffer_snaps = [f.clone() for f in self._buffer_flats]
        self._pairs = [
            (_bits(f), _bits(s))
            for f, s in zip(
                self._param_flats + self._buffer_flats, self._param_snaps + self._buffer_snaps, strict=True
            )
        ]
        # Precomputed pairs: verify and the refreshes run at every local step, so no zip() per call.
        # is_set_to: same storage, offset, sizes and strides, in one call (the alias keeps the sealed ones)
        self._metas = [(t, t.detach(), t.dtype) for t in self._live]
        self.has_buffers = bool(self._buffer_flats)
        self._param_copies = list(zip(self._param_snaps, self._param_flats, strict=True))
        self._buffer_copies = list(zip(self._buffer_snaps, self._buffer_flats, strict=True))
        # However the run ends, the pages are writable again before their memory can go back to the allocator
        # (the parameters this seal holds keep their storage alive as long as it lives).
        self._unseal = weakref.finalize(self, _unprotect, self._pages, self._regions)
        if self._pages is not None:
            self._pages.protect(self._regions)

    @contextmanager
    def writable(self) -> Iterator[None]:
        """The engine's own writes into the parameters (loading weights, the SGD step) go inside this; with
        write protection the pages are writable only meanwhile (no recipe code runs in it)."""
        pages = self._pages
        if pages is None:
            yield
            return
        pages.unprotect(self._regions)
        try:
            yield
        finally:
            pages.protect(self._regions)

    def label(self, hook: str) -> None:
        """Name the hook now running (or whose result the engine is reading), for the message a write into
        the protected parameters leaves (no-op without write protection)."""
        if self._pages is not None:
            self._pages.label(f"{self.where or 'the run'}: the recipe's {hook} (or what it returned)")

    def release(self) -> None:
        """Make the parameters' pages writable again (the run is over; the memory goes back to the
        allocator, which writes into freed memory). Also done when the seal is collected."""
        self._pages = None
        self._unseal()

    def refresh(self) -> None:
        """Re-seal every parameter and buffer (after the engine loaded weights or evaluated)."""
        self.refresh_params()
        self.refresh_buffers()

    def refresh_params(self) -> None:
        """Re-seal the parameters (after the engine's SGD step)."""
        for snap, flat in self._param_copies:
            snap.copy_(flat)

    def refresh_buffers(self) -> None:
        """Re-seal the buffers (after the engine's forward pass, which may update running statistics)."""
        for snap, flat in self._buffer_copies:
            snap.copy_(flat)

    def verify(self, hook: str) -> None:
        """Raise :class:`TrainingFailure` naming ``hook`` and what it changed if the model left the seal."""
        for table, size in self._sizes:
            if len(table) != size:
                self._fail(hook, "added or removed a parameter, buffer or submodule of the model")
        for table, key, value in self._entries:
            if table.get(key) is not value:
                self._fail(hook, f"replaced {key!r} of a module of the model")
        for t, sealed, dtype in self._metas:
            if not t.is_set_to(sealed) or t.dtype != dtype:
                self._changed_meta(hook)
        for live, snap in self._pairs:
            if not torch.equal(live, snap):
                self._changed_content(hook)
        for p in self._params:
            if p.grad is not None:
                self._fail(hook, f"set a gradient on parameter {self._names[self._params.index(p)]!r}")

    def _changed_meta(self, hook: str) -> None:
        for i, t in enumerate(self._live):
            was, now = self._meta[i], _meta(t)
            if was != now:
                what = f"dtype {was[1]} -> {now[1]}" if was[1] != now[1] else "storage, shape or strides"
                self._fail(hook, f"changed the {what} of {self._kind(i)} {self._names[i]!r}")

    def _changed_content(self, hook: str) -> None:
        # Every tensor is a view of a flat one: compare each with the same view of the snapshot.
        snaps = self._param_snaps + self._buffer_snaps
        flats = self._param_flats + self._buffer_flats
        for i, t in enumerate(self._live):
            for flat, snap in zip(flats, snaps, strict=True):
                if t.dtype == flat.dtype and t.device == flat.device:
                    lo = (t.data_ptr() - flat.data_ptr()) // t.element_size()
                    if 0 <= lo < flat.numel() or t.numel() == 0:
                        old = snap[lo : lo + t.numel()].view(t.shape)
                        if not identical(t.detach(), old):
                            differ = int((_bits(t) != _bits(old)).sum())
                            self._fail(
                                hook,
                                f"changed {self._kind(i)} {self._names[i]!r} in place "
                                f"({differ} of {t.numel()} values differ from the engine's)",
                            )
        self._fail(hook, "changed the model's parameters or buffers in place")

    def _kind(self, i: int) -> str:
        return "parameter" if i < self._num_params else "buffer"

    def _fail(self, hook: str, what: str) -> None:
        where = f"{self.where}: " if self.where else ""
        raise TrainingFailure(
            f"{where}the recipe's {hook} {what}; only the engine's optimiser step may change the model's "
            "parameters (and its forward pass the buffers)"
        )


# --- the model as local_objective sees it ---------------------------------------------------------------

ALLOWED_METHODS = frozenset(
    {
        "parameters",
        "named_parameters",
        "buffers",
        "named_buffers",
        "state_dict",
        "get_parameter",
        "get_buffer",
    }
)
"""Read-only module methods a recipe may call (their tensors are the live ones: the seal guards them)."""
CONTAINER_METHODS = frozenset({"keys", "items", "values"})
"""ModuleDict/ParameterDict views, also read-only."""
_CONVERSIONS = """half float double bfloat16 to to_empty cuda cpu xpu ipu mtia type apply _apply share_memory
    requires_grad_ train eval zero_grad load_state_dict register_buffer register_parameter register_module
    add_module"""
CONVERSIONS = frozenset(_CONVERSIONS.split())
"""Refused with a specific reason: they change dtype, device, storage, mode or structure of the model."""
_SCALARS = (bool, int, float, str, type(None))


class _Tree:
    """The views of one model, one per module (so ``model.fc is model.fc``), and the run's context."""

    def __init__(self, where: Callable[[], str]) -> None:
        self.views: dict[int, ModelView] = {}
        self.paths: dict[int, str] = {}
        """How the recipe reached each view (``model.net[0]``), by the view's id, for messages."""
        self.methods: dict[tuple[int, str], Callable[..., Any]] = {}
        """The allowed methods handed out, by (view id, name): made once, called at every local step."""
        self.where = where

    def wrap(self, value: Any, path: str) -> Any:
        if isinstance(value, nn.Module):
            view = self.views.get(id(value))
            return view if view is not None else ModelView(value, tree=self, path=path)
        return value

    def wrap_item(self, x: Any, path: str) -> Any:
        # Called per item of named_parameters() & co. (each local step): the common case returns at once.
        if isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], nn.Module):  # (name, module) pairs
            return (x[0], self.wrap(x[1], f"{path}[{x[0]!r}]"))
        return self.wrap(x, f"{path}[...]") if isinstance(x, nn.Module) else x

    def refuse(self, view: ModelView, what: str, why: str) -> TrainingFailure:
        where = self.where()
        prefix = f"{where}: " if where else ""
        allowed = ", ".join(sorted(ALLOWED_METHODS))
        what = what.replace("@", self.paths[id(view)], 1)  # "@": where the view sits in the model
        return TrainingFailure(
            f"{prefix}the recipe's local_objective {what}: {why}; "
            f"a recipe may read the model through {allowed} and its submodule and parameter attributes"
        )


# The real module and the tree behind each view, keyed by the view's id: the view object itself holds no
# reference a recipe could follow (defence in depth, should an attribute rule of the validator ever let
# one through). ModelView.release() forgets a whole tree.
_TARGETS: dict[int, nn.Module] = {}
_TREES: dict[int, _Tree] = {}


def _plain(method: Callable[..., Any]) -> Callable[..., Any]:
    # A closure, not the bound method: a bound method's __self__ would lead back to the real module. The
    # allowed methods return tensors (or names and tensors), never a module: nothing to wrap.
    def call(*args: Any, **kwargs: Any) -> Any:
        return method(*args, **kwargs)

    return call


def _read_only(method: Callable[..., Any], tree: _Tree, path: str) -> Callable[..., Any]:
    # As _plain, for container methods whose results include submodules (wrapped as views).
    def call(*args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        if isinstance(out, Iterator):
            return (tree.wrap_item(x, path) for x in out)
        return tree.wrap_item(out, path)

    return call


class ModelView:
    """A read-only view of a module for ``local_objective``: allow-listed methods, submodules (as views),
    parameters and buffers by attribute, container indexing; everything else raises TrainingFailure.

    ``where`` gives the context for messages (``client 3, round 2``).
    """

    __slots__ = ("__weakref__",)

    def __init__(
        self,
        module: nn.Module,
        where: Callable[[], str] = str,
        *,
        tree: _Tree | None = None,
        path: str = "model",
    ) -> None:
        tree = _Tree(where) if tree is None else tree
        tree.views[id(module)] = self
        tree.paths[id(self)] = path
        _TARGETS[id(self)] = module
        _TREES[id(self)] = tree

    def release(self) -> None:
        """Forget every view of this tree (the engine calls it when the run ends)."""
        tree = _TREES.get(id(self))
        for view in tree.views.values() if tree is not None else ():
            _TARGETS.pop(id(view), None)
            _TREES.pop(id(view), None)

    def __getattr__(self, name: str) -> Any:
        module, tree = _TARGETS[id(self)], _TREES[id(self)]
        path = tree.paths[id(self)]
        for table in ("_modules", "_parameters", "_buffers"):
            entries = module.__dict__.get(table, {})
            if name in entries:
                return tree.wrap(entries[name], f"{path}.{name}")
        if name in ALLOWED_METHODS:
            method = tree.methods.get((id(self), name))
            if method is None:
                method = tree.methods[id(self), name] = _plain(getattr(module, name))
            return method
        if name in CONTAINER_METHODS and isinstance(module, nn.ModuleDict):
            return _read_only(getattr(module, name), tree, path)
        if name == "training":
            return module.training
        if name in CONVERSIONS:
            why = "module methods that change dtype, device, storage or mode are refused"
            raise tree.refuse(self, f"called @.{name}()", why)
        if name in module.__dict__ and isinstance(module.__dict__[name], _SCALARS):
            return module.__dict__[name]  # plain settings (sizes, flags): immutable
        raise tree.refuse(
            self, f"asked for @.{name}", "it is not among the module attributes a recipe may use"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise _TREES[id(self)].refuse(self, f"assigned @.{name}", "the model's attributes are the engine's")

    def __delattr__(self, name: str) -> None:
        raise _TREES[id(self)].refuse(self, f"deleted @.{name}", "the model's attributes are the engine's")

    def __getitem__(self, key: Any) -> Any:
        tree = _TREES[id(self)]
        return tree.wrap(_TARGETS[id(self)][key], f"{tree.paths[id(self)]}[{key!r}]")  # type: ignore[index]

    def __setitem__(self, key: Any, value: Any) -> None:
        raise _TREES[id(self)].refuse(self, f"assigned @[{key!r}]", "the model's submodules are the engine's")

    def __delitem__(self, key: Any) -> None:
        raise _TREES[id(self)].refuse(self, f"deleted @[{key!r}]", "the model's submodules are the engine's")

    def __len__(self) -> int:
        return len(_TARGETS[id(self)])  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        tree = _TREES[id(self)]
        path = tree.paths[id(self)]
        items = enumerate(iter(_TARGETS[id(self)]))  # type: ignore[call-overload]
        return (tree.wrap(x, f"{path}[{i}]") for i, x in items)

    def __contains__(self, key: Any) -> bool:
        return key in _TARGETS[id(self)]  # type: ignore[operator]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The forward guard refuses it outside the engine's training step, with its own message.
        return _TARGETS[id(self)](*args, **kwargs)

    def __repr__(self) -> str:
        module = _TARGETS.get(id(self))
        return f"ModelView({module!r})" if module is not None else "ModelView(<released>)"

    def __dir__(self) -> list[str]:
        module = _TARGETS[id(self)]
        names = set(ALLOWED_METHODS) | {"training"}
        for table in ("_modules", "_parameters", "_buffers"):
            names |= set(module.__dict__.get(table, {}))
        return sorted(names)
