"""Batched clients: the selected clients of a round trained as one computation.

Every client's copy of the parameters is a row of one stacked leaf per parameter (row = client index). A
local step draws each active client's batch from its own stream (the same batches as the per-client path),
runs the model and the task loss once for all of them (:class:`BatchedLoss`: ``nn.Linear`` layers as one
``baddbmm`` plus the profile's optional ``batched_loss``, or ``torch.func.vmap``), applies the recipe's
local objective, and takes one backward pass and one SGD update for all rows (per-client learning rates; a
client with fewer steps has no row in the later steps, so its row is left exactly as it was; batches of
different lengths — a client's short last batch of an epoch — are computed as separate groups).

The local objective is not vmapped: the engine calls it once per client on ordinary tensors (its own
``ctx``, its own parameter rows, its own global-RNG stream), so any objective the per-client path accepts —
``.item()``, data-dependent Python control flow, per-client state — computes the same thing here. Two shipped
objectives are computed for all clients at once without calling the hook: FedAvg's (the task loss) and
FedProx's (task loss + mu/2 ||θ - x||²), when a recipe inherits them unchanged. For those two, a model the
profile declares a :class:`~afr.profiles.LinearHead` (one ``nn.Linear`` + a per-sample loss with its
derivative: heart_disease's logistic regression, synthetic's softmax regression) trains in closed form
without autograd (:class:`FusedLinear`, checked against autograd on real data before round 0 by
:func:`fused_head`); ``engine_note`` then says ``stacked, closed-form linear steps``.

What cannot be batched falls back to the per-client loop, with the reason recorded in the result
(:func:`batching_blocker`): a non-CPU device, a model with buffers (per-client running statistics), more
than :data:`MAX_MODEL_PARAMS` parameters, mixed parameter dtypes, stacked parameters over the memory cap,
random draws in the forward pass or loss (the per-client path reseeds the global RNG per client), or a
model/loss that neither batched form computes like the per-client one (checked on real data before round
0). A schedule hook drawing from the global RNG, or a batch shape the probe did not foresee failing, raises
:class:`FallBack`: the run restarts per client.

Integrity on this path (``_integrity.py`` holds for the live model as before): the stacked parameters are
sealed like the model's (:class:`StackedParams.verify` after every recipe hook, bit for bit, naming the
parameter and counting the values of the client's row that changed), ``local_objective`` sees the model
through the same read-only :class:`~afr.engine._integrity.ModelView` (whose parameters are the client's
rows while it runs), a gradient planted on a row or a row whose storage was swapped fails the run, and the
forward guard, step limit and payload checks are unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import TrainingFailure
from ..profiles import LinearHead, Profile
from ._integrity import _bits

__all__ = [
    "StackedParams",
    "BatchedLoss",
    "batching_blocker",
    "FallBack",
    "FusedLinear",
    "fused_head",
    "MAX_STACK_BYTES",
    "MAX_MODEL_PARAMS",
]

MAX_STACK_BYTES = 256 * 2**20
"""Above this many bytes of stacked parameters (clients x model) the engine trains clients one by one."""
MAX_MODEL_PARAMS = 100_000
"""Larger models train one client after another. Batching removes per-operation overhead, which dominates
only small models: femnist's 6.6 M-parameter CNN under vmap took 1.9x the per-client time (cpu preset, 2
rounds, measured side by side), while a 40-parameter Cox model takes about a third."""

PROBE_RTOL, PROBE_ATOL = 1e-4, 1e-5
"""How close the batched probe's losses and gradients must be to the per-client ones (float32 reductions in
another order differ in the last bits; a model that vmaps *differently* differs by far more)."""


class FallBack(Exception):  # noqa: N818 — a control-flow signal, not an error for the user
    """The batched path met something it cannot do the per-client way: the run restarts per client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


class _Unsupported(Exception):  # noqa: N818
    """The stacked forward met an input it does not batch (the probe then tries vmap)."""


def _stacked_linear(module: nn.Linear) -> Callable[[Tensor], Tensor]:
    """``module``'s forward with its parameter entries holding stacked ``[clients, ...]`` tensors: one
    ``baddbmm`` over inputs ``[clients, batch..., in]``."""

    def forward(x: Tensor) -> Tensor:
        weight, bias = module._parameters["weight"], module._parameters["bias"]
        assert weight is not None
        if x.dim() < 3 or x.shape[0] != weight.shape[0]:
            raise _Unsupported("a linear layer got an input without the client dimension")
        flat = x if x.dim() == 3 else x.reshape(x.shape[0], -1, x.shape[-1])
        w = weight.transpose(1, 2)
        out = torch.bmm(flat, w) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, w)
        return out if x.dim() == 3 else out.view(*x.shape[:-1], weight.shape[1])

    return forward


class BatchedLoss:
    """``losses(rows, inputs, targets)``: the task loss of every client of a group in one computation.

    ``rows`` holds one tensor per parameter with a leading client dimension; ``inputs`` and ``targets``
    one batch per client, stacked. Two ways, chosen by the probe (:func:`batching_blocker`):

    * ``"stacked"``: the model's own forward once on the stacked batches, every ``nn.Linear`` computing all
      clients' rows with one ``baddbmm`` (models whose only parameters sit in ``nn.Linear`` layers; the
      other layers must broadcast over a leading dimension, which the probe checks on real data), then the
      profile's ``batched_loss`` (or the task loss under ``vmap``) — for small models, where vmap's own
      per-call cost would dominate;
    * ``"vmap"``: ``torch.func.vmap`` over the model's forward and the task loss.

    The model's parameter entries are swapped for the rows while it runs (plain dict entries, so the module
    tree and its order stay as they were) and restored afterwards.
    """

    def __init__(self, model: nn.Module, profile: Profile, mode: str = "stacked") -> None:
        self.model, self.loss, self.mode = model, profile.loss, mode
        self.slots = [
            (module._parameters, key)
            for _, module in model.named_modules()
            for key, p in module._parameters.items()
            if p is not None
        ]
        self.originals = [table[key] for table, key in self.slots]
        self._vmapped = torch.func.vmap(self._one, randomness="error")
        own = type(profile).batched_loss is not Profile.batched_loss
        self._loss_batched = profile.batched_loss if own else torch.func.vmap(self.loss)
        holders = [m for m in model.modules() if any(p is not None for p in m._parameters.values())]
        self.stackable = all(type(m) is nn.Linear for m in holders)
        self._forwards = [(m.__dict__, _stacked_linear(m)) for m in holders if type(m) is nn.Linear]

    def swap(self, tensors: Sequence[Tensor]) -> None:
        """Put ``tensors`` in the model's parameter entries (named_parameters order)."""
        for (table, key), t in zip(self.slots, tensors, strict=True):
            table[key] = t

    def restore(self) -> None:
        for (table, key), t in zip(self.slots, self.originals, strict=True):
            table[key] = t

    def _one(self, params: tuple[Tensor, ...], inputs: Tensor, targets: Tensor) -> Tensor:
        self.swap(params)
        try:
            outputs = self.model(inputs)
        finally:
            self.restore()
        return self.loss(outputs, targets)

    def __call__(self, rows: Sequence[Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        if self.mode == "vmap":
            return self._vmapped(tuple(rows), inputs, targets)
        self.swap(rows)
        for attributes, forward in self._forwards:
            attributes["forward"] = forward  # shadows the class's forward for this call only
        try:
            outputs = self.model(inputs)
        finally:
            for attributes, _ in self._forwards:
                del attributes["forward"]
            self.restore()
        return self._loss_batched(outputs, targets)


class StackedParams:
    """Every client's parameters as rows of one leaf per parameter, all views of one flat tensor.

    The flat tensor is sealed like the live model (``ParamSeal``): :meth:`refresh` after the engine's own
    writes (round start, SGD step), :meth:`verify` after every recipe hook. The leaves live for the whole
    run, so a row a recipe kept from an earlier call still points here and a later write through it is seen.
    """

    def __init__(self, names: list[str], params: list[Tensor], num_clients: int, integrity: bool) -> None:
        self.names, self.num_clients = names, num_clients
        dtype = params[0].dtype
        self.flat = torch.empty(num_clients * sum(p.numel() for p in params), dtype=dtype)
        self.leaves: list[Tensor] = []
        self.bounds: list[tuple[int, int]] = []
        offset = 0
        for p in params:
            size = num_clients * p.numel()
            leaf = self.flat[offset : offset + size].view(num_clients, *p.shape)
            leaf.requires_grad_()  # a leaf: the flat tensor itself needs no gradient
            self.leaves.append(leaf)
            self.bounds.append((offset, size))
            offset += size
        # Rows of the leaves without autograd: what a row handed to a recipe must still be set to.
        self.aliases = [[leaf.detach()[c] for leaf in self.leaves] for c in range(num_clients)]
        self.dtype = dtype
        self.where = ""
        self._snap = self.flat.clone() if integrity else None
        self._pair = (_bits(self.flat), _bits(self._snap)) if integrity else None

    def load(self, global_params: dict[str, Tensor]) -> None:
        """Every row <- the global parameters (round start)."""
        with torch.no_grad():
            for name, leaf in zip(self.names, self.leaves, strict=True):
                leaf.copy_(global_params[name].unsqueeze(0).expand_as(leaf))
        self.refresh()

    def refresh(self) -> None:
        if self._snap is not None:
            self._snap.copy_(self.flat)

    def sgd_step(self, lrs: list[float] | float) -> None:
        """p <- p - lr_c * grad for every row (rows without a gradient this step get exactly zero); ``lrs``
        one learning rate per row, or one for all."""
        with_grad = [leaf for leaf in self.leaves if leaf.grad is not None]
        with torch.no_grad():
            if isinstance(lrs, float):  # the common case: the per-client path's exact arithmetic (add, alpha)
                torch._foreach_add_(with_grad, [leaf.grad for leaf in with_grad], alpha=-lrs)
            else:
                neg = torch.tensor([-lr for lr in lrs], dtype=self.dtype)
                for leaf in with_grad:
                    leaf.addcmul_(leaf.grad, neg.view(-1, *([1] * (leaf.dim() - 1))))
        for leaf in with_grad:
            leaf.grad = None
        self.refresh()

    def check_rows(self, client: int, rows: list[Tensor], hook: str) -> None:
        """A row given to ``hook`` must still view the leaves and carry no planted gradient."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reading .grad of a non-leaf warns; here it is the point
            planted = [name for name, row in zip(self.names, rows, strict=True) if row.grad is not None]
        if planted:
            # Harmless here (backward fills the leaves' gradients), but the per-client path refuses it.
            self._fail(hook, f"set a gradient on parameter {planted[0]!r}")
        for name, row, alias in zip(self.names, rows, self.aliases[client], strict=True):
            if row.dtype != self.dtype or not row.is_set_to(alias):
                self._fail(hook, f"changed the storage, shape or strides of parameter {name!r}")

    def verify(self, hook: str) -> None:
        """Fail naming ``hook`` if any row changed since the engine's last write."""
        if self._pair is None or torch.equal(*self._pair):
            return
        assert self._snap is not None
        for name, (lo, size) in zip(self.names, self.bounds, strict=True):
            now = _bits(self.flat[lo : lo + size]).view(self.num_clients, -1)
            was = _bits(self._snap[lo : lo + size]).view(self.num_clients, -1)
            differ = (now != was).sum(dim=1)
            for client in range(self.num_clients):
                if differ[client]:
                    count = f"{int(differ[client])} of {now.shape[1]}"
                    self._fail(
                        hook,
                        f"changed parameter {name!r} in place ({count} values differ from the engine's; "
                        f"client {client}'s copy)",
                    )
        self._fail(hook, "changed the clients' parameters in place")

    def _fail(self, hook: str, what: str) -> None:
        where = f"{self.where}: " if self.where else ""
        raise TrainingFailure(
            f"{where}the recipe's {hook} {what}; only the engine's optimiser step may change the model's "
            "parameters (and its forward pass the buffers)"
        )


def batching_blocker(
    model: nn.Module, profile: Profile, train: Sequence[Any], batch_size: int, device: torch.device
) -> tuple[str, str]:
    """How this run's clients can be trained as one computation: ``(mode, "")`` with mode ``"stacked"`` or
    ``"vmap"`` (see :class:`BatchedLoss`), or ``("", why not)``.

    The last check runs each mode's batched loss and its gradient on the first rows of two clients' data
    (no stream is touched, the global RNG is restored) and compares them with the per-client computation.
    """
    if device.type != "cpu":
        return "", f"device {device.type}: the batched path runs on CPU only"
    if len(train) < 2:
        return "", "one client: nothing to batch"
    if any(True for _ in model.buffers()):
        return "", "the model has buffers (per-client running statistics are not batched)"
    params = [p for p in model.parameters()]
    if not params:
        return "", "the model has no parameters"
    if len({p.dtype for p in params}) != 1 or not params[0].dtype.is_floating_point:
        return "", "the model's parameters are not all of one floating-point dtype"
    size = sum(p.numel() for p in params)
    if size > MAX_MODEL_PARAMS:
        return (
            "",
            f"the model has {size:,} parameters (> {MAX_MODEL_PARAMS:,}): batching pays off on small models",
        )
    stack_bytes = len(train) * sum(p.numel() * p.element_size() for p in params)
    if stack_bytes > MAX_STACK_BYTES:
        mb = stack_bytes / 2**20
        return "", f"stacked parameters would take {mb:.0f} MB (cap {MAX_STACK_BYTES // 2**20} MB)"
    rng = torch.get_rng_state()
    reasons = []
    try:
        for mode in ("stacked", "vmap"):
            batched = BatchedLoss(model, profile, mode)
            if mode == "stacked" and not batched.stackable:
                reasons.append("stacked: parameters outside nn.Linear layers")
                continue
            why = _probe(batched, model, profile, train, batch_size, params, transform=False)
            if why.startswith(_RAISED) and type(profile).train_batch is not Profile.train_batch:
                # raw rows may not be what the model takes (uint8 images, byte-coded text): as it sees them
                why = _probe(batched, model, profile, train, batch_size, params, transform=True)
            if not why:
                return mode, ""
            reasons.append(f"{mode}: {why}")
    finally:
        torch.set_rng_state(rng)
    return "", "; ".join(reasons)


_RAISED = "cannot run the model and task loss batched"


def _probe(
    batched: BatchedLoss,
    model: nn.Module,
    profile: Profile,
    train: Sequence[Any],
    batch_size: int,
    params: list[Tensor],
    transform: bool,
) -> str:
    """ "" if ``batched`` computes the per-client losses and gradients on the first rows of two clients."""
    loss = profile.loss
    for size in sorted({min(batch_size, len(train[0]), len(train[1])), 1}, reverse=True):
        batches = [train[c].slice(0, size) for c in (0, 1)]
        if transform:  # a throwaway generator: the run's augmentation streams stay untouched
            batches = [profile.train_batch(x, y, torch.Generator().manual_seed(0)) for x, y in batches]
        if not all(isinstance(t, Tensor) for batch in batches for t in batch):
            return "the batches are not tensors"
        inputs = torch.stack([b[0] for b in batches])
        targets = torch.stack([b[1] for b in batches])
        rows = [p.detach().unsqueeze(0).repeat(2, *([1] * p.dim())).requires_grad_() for p in params]
        try:
            before = torch.get_rng_state()
            losses = batched(rows, inputs, targets)
            if not torch.equal(before, torch.get_rng_state()):
                # the per-client path reseeds the global RNG per client: random draws cannot be batched
                return "the forward pass or task loss draws random numbers"
            if losses.shape != (2,):
                return f"the task loss is not a scalar per client under vmap (shape {tuple(losses.shape)})"
            losses.sum().backward()
        except Exception as exc:  # any failure of vmap: train per client
            return f"{_RAISED} ({_first_line(exc)})"
        for c in (0, 1):
            own = [p.detach().clone().requires_grad_() for p in params]
            batched.swap(own)
            try:
                reference = loss(model(batches[c][0]), batches[c][1])
            finally:
                batched.restore()
            grads = torch.autograd.grad(reference, own, allow_unused=True)
            close = torch.allclose(losses[c].detach(), reference.detach(), rtol=PROBE_RTOL, atol=PROBE_ATOL)
            for row, grad in zip(rows, grads, strict=True):
                want = torch.zeros_like(row[c]) if grad is None else grad
                got = torch.zeros_like(row[c]) if row.grad is None else row.grad[c]
                close = close and torch.allclose(got, want, rtol=PROBE_RTOL, atol=PROBE_ATOL)
            if not close:
                return "the batched model and task loss differ from the per-client computation"
    return ""


class FusedLinear:
    """Local steps of FedAvg's objective (the task loss) or FedProx's (+ mu/2 ||θ - x||²) for a model the
    profile declares a :class:`~afr.profiles.LinearHead`, in closed form: per step one ``bmm`` for the linear
    outputs of every row, the profile's weighted per-sample derivative, one ``bmm`` for the gradients of
    weight and bias (the inputs carry a column of ones, the rows ``[weight | bias]``) and the SGD update — no
    autograd graph, no module call. On a 13-feature logistic regression autograd's fixed cost per step was
    most of the step.

    A round's batches are gathered at its start: every selected client's stream hands out the sample
    indices of all its steps (:meth:`BatchStream.take`, the same draws as batch after batch), and one
    index operation gathers them from the clients' concatenated data. A client's short last batch of an
    epoch is padded and its padding weighted 0 (each sample weighs 1 / its batch's length: the gradient of
    the mean), so every step is one computation for all rows; a row whose client has no step left gets
    weight 0 and learning rate 0 and keeps its values.

    Only the engine runs here: no recipe hook is called between a round's first step and its last (FedAvg
    and FedProx inherit their objective unchanged, which is what selects this path), so the rows are trained
    as one working tensor and written back, and the stacked rows' seal refreshed, once after the steps.
    """

    def __init__(
        self, head: LinearHead, stack: StackedParams, names: list[str], model: nn.Module, data: Sequence[Any]
    ) -> None:
        self.head = head
        by_id = {id(p): n for n, p in model.named_parameters()}
        self.names = (by_id[id(head.linear.weight)], by_id[id(head.linear.bias)])
        self.weight = stack.leaves[names.index(self.names[0])].detach()  # [clients, out, in]
        self.bias = stack.leaves[names.index(self.names[1])].detach()  # [clients, out]
        self.inputs = _with_ones(torch.cat([d.inputs for d in data]))
        self.targets = torch.cat([d.targets for d in data])
        sizes = torch.tensor([len(d) for d in data])
        self.offsets = torch.cumsum(sizes, 0) - sizes

    def train(
        self,
        rows: list[int],
        batches: list[tuple[Tensor, Tensor]],
        lrs: list[float],
        steps: list[int],
        mu: float | None,
        anchor: dict[str, Tensor],
    ) -> list[Tensor | None]:
        """Train ``rows`` (the selected clients) for their ``steps`` on their ``batches`` (from
        :meth:`BatchStream.take`) with their ``lrs``; ``mu``: FedProx's, around ``anchor`` (the global
        parameters). Returns each client's loss at its last step (before that step's update)."""
        last: list[Tensor | None] = [None] * len(rows)
        num_steps = max(steps, default=0)
        if num_steps == 0:
            return last
        dtype = self.weight.dtype
        size = batches[0][0].shape[1]
        index = torch.zeros(num_steps, len(rows), size, dtype=torch.long)
        lengths = torch.ones(num_steps, len(rows), 1, dtype=torch.long)
        for j, (client, (indices, counts)) in enumerate(zip(rows, batches, strict=True)):
            index[: len(counts), j] = indices + self.offsets[client]
            lengths[: len(counts), j, 0] = counts
        present = torch.arange(size) < lengths
        for j, n in enumerate(steps):
            present[n:, j] = False  # no step left: weight 0
        weight = (present.to(dtype) / lengths.to(dtype)).unsqueeze(-1)  # [steps, rows, batch, 1]
        inputs, targets = self.inputs[index].unbind(0), self.targets[index].unbind(0)
        rows_t = torch.tensor(rows)
        wb = torch.cat([self.weight[rows_t], self.bias[rows_t].unsqueeze(-1)], dim=-1)  # [rows, out, in+1]
        wb_t = wb.transpose(1, 2)
        center = torch.cat([anchor[self.names[0]], anchor[self.names[1]].unsqueeze(-1)], dim=-1)
        if len(set(lrs)) == 1 and len(set(steps)) == 1:
            scale: float | list[Tensor] = -lrs[0]
        else:
            active = torch.arange(num_steps).unsqueeze(1) < torch.tensor(steps).unsqueeze(0)
            scale = (active.to(dtype) * -torch.tensor(lrs, dtype=dtype)).view(num_steps, -1, 1, 1).unbind(0)
        ends: dict[int, list[int]] = {}
        for j, n in enumerate(steps):
            if n:
                ends.setdefault(n - 1, []).append(j)
        sample_grad, sample_loss = self.head.sample_grad, self.head.sample_loss
        for step, (x, y, w) in enumerate(zip(inputs, targets, weight.unbind(0), strict=True)):
            z = torch.bmm(x, wb_t)
            if step in ends:
                losses = (sample_loss(z, y) * w.squeeze(-1)).sum(dim=1)
                if mu is not None:
                    losses = losses + mu / 2 * (wb - center).pow(2).flatten(1).sum(dim=1)
                for j in ends[step]:
                    last[j] = losses[j]
            grad = torch.bmm(sample_grad(z, y, w).transpose(1, 2), x)
            if mu is not None:
                grad.add_(wb - center, alpha=mu)
            if isinstance(scale, float):
                wb.add_(grad, alpha=scale)
            else:
                wb.addcmul_(grad, scale[step])
        self.weight[rows_t] = wb[..., :-1]
        self.bias[rows_t] = wb[..., -1]
        return last


def _with_ones(inputs: Tensor) -> Tensor:
    """``inputs [..., in]`` with a column of ones appended: the bias as one more weight."""
    return torch.cat([inputs, torch.ones(*inputs.shape[:-1], 1, dtype=inputs.dtype)], dim=-1)


def fused_head(
    model: nn.Module, profile: Profile, train: Sequence[Any], batch_size: int, params: list[Tensor]
) -> tuple[LinearHead | None, str]:
    """The profile's :class:`~afr.profiles.LinearHead` for ``model`` if :class:`FusedLinear` computes what
    autograd computes on it: ``(head, "")``, else ``(None, why not)``.

    Checked on the first rows of two clients' data (one a full batch, one a single sample padded to a full
    batch): each client's task loss and gradients against ``profile.loss`` of the model's own forward under
    autograd, within the probe's tolerances; the global RNG must stay untouched.
    """
    if type(profile).train_batch is not Profile.train_batch:
        return None, "the profile transforms training batches"
    owners = {
        name: next(k for k in type(profile).__mro__ if name in vars(k)) for name in ("linear_head", "loss")
    }
    if owners["loss"] not in owners["linear_head"].__mro__:
        return None, f"{owners['loss'].__name__} changes the task loss, not its linear head"
    head = profile.linear_head(model)
    if head is None:
        return None, "the profile declares no linear head for this model"
    linear = head.linear if isinstance(head, LinearHead) else None
    if type(linear) is not nn.Linear or linear.bias is None:
        return None, "the linear head is not an nn.Linear with a bias"
    if {id(p) for p in params} != {id(linear.weight), id(linear.bias)} or len(params) != 2:
        return None, "the model has parameters outside its linear head"
    sizes = [min(batch_size, len(train[0])), 1]
    rng = torch.get_rng_state()
    try:
        with torch.no_grad():
            dtype = linear.weight.dtype
            index = torch.zeros(2, batch_size, dtype=torch.long)
            index[0, : sizes[0]] = torch.arange(sizes[0])
            inputs = _with_ones(torch.stack([train[c].inputs[index[c]] for c in (0, 1)]))
            targets = torch.stack([train[c].targets[index[c]] for c in (0, 1)])
            counts = torch.tensor(sizes).unsqueeze(1)
            weight = ((torch.arange(batch_size) < counts).to(dtype) / counts.to(dtype)).unsqueeze(-1)
            wb = torch.cat([linear.weight.detach(), linear.bias.detach().unsqueeze(-1)], dim=-1)
            wb = wb.unsqueeze(0).repeat(2, 1, 1)
            z = torch.bmm(inputs, wb.transpose(1, 2))
            losses = (head.sample_loss(z, targets) * weight.squeeze(-1)).sum(dim=1)
            grads = torch.bmm(head.sample_grad(z, targets, weight).transpose(1, 2), inputs)
        if not torch.equal(rng, torch.get_rng_state()):
            return None, "the linear head's loss draws random numbers"
        for c in (0, 1):
            batch = train[c].slice(0, sizes[c])
            reference = profile.loss(model(batch[0]), batch[1])
            want_w, want_b = torch.autograd.grad(reference, [linear.weight, linear.bias])
            close = torch.allclose(losses[c], reference.detach(), rtol=PROBE_RTOL, atol=PROBE_ATOL)
            for got, want in ((grads[c][:, :-1], want_w), (grads[c][:, -1], want_b)):
                close = close and got.shape == want.shape
                close = close and torch.allclose(got, want, rtol=PROBE_RTOL, atol=PROBE_ATOL)
            if not close:
                return None, "the linear head's loss or gradient differs from autograd's"
    except Exception as exc:  # a head that does not fit the model or the data: autograd as before
        return None, f"the linear head failed ({_first_line(exc)})"
    finally:
        torch.set_rng_state(rng)
    return head, ""
