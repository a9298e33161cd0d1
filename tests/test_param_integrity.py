"""Parameter integrity by content (afr/engine/_integrity.py): every check with a hand-made recipe and its
message, the private copies that cut storage-shared channels, and legit recipes that must not trip them.

The recipes here are plain Python (not validated): they may do what a candidate can only attempt through
a validator gap (keep references on ``self``, set ``.grad``), so that the run-time checks are what stops them.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from afr.engine import _integrity, run_federation
from afr.engine._integrity import ModelView, ParamSeal
from afr.errors import TrainingFailure
from afr.profiles import Profile, make_profile
from afr.recipe import RECIPES, FedAvg

ROUNDS, STEPS = 2, 3


@pytest.fixture(scope="module")
def profile() -> Profile:
    return make_profile("synthetic", rounds=ROUNDS, local_steps=STEPS, num_clients=3)


def fails(profile: Profile, cls: type[FedAvg], *fragments: str) -> str:
    """Run ``cls``; it must fail with a message holding every fragment. The message, for more asserts."""
    with pytest.raises(TrainingFailure) as info:
        run_federation(profile, profile.make_recipe(cls), 0)
    message = info.value.message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the seal: parameters change only by the engine's optimiser step ----------------------------------------


class UnsafeSplitPush(FedAvg):
    name = "unsafe_split_push"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.unsafe_split(1)[0].add_(1000.0)  # a view with its own version counter
        return task_loss


def test_unsafe_view_write_in_local_objective(profile: Profile) -> None:
    message = fails(
        profile,
        UnsafeSplitPush,
        "client 0, round 0: the recipe's local_objective changed parameter 'linear.weight'",
    )
    assert "60 of 600 values differ" in message
    assert "only the engine's optimiser step may change" in message


class PushThenUndo(FedAvg):
    name = "push_then_undo"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            bias = model.linear.bias.unsafe_chunk(1)[0]
            bias.add_(1.0) if ctx.step == 0 else bias.sub_(1.0) if ctx.step == 1 else None
        return task_loss


def test_change_undone_at_the_next_step_is_still_seen(profile: Profile) -> None:
    fails(profile, PushThenUndo, "local_objective changed parameter 'linear.bias' in place (10 of 10")


class StashOnSelf(FedAvg):
    """Keeps the live parameters on self (a candidate cannot: attribute assignment) and writes into them
    from the hook named by ``hook``."""

    name = "stash_on_self"
    hook = ""

    def _write(self, name: str) -> None:
        if name == self.hook:
            with torch.no_grad():
                for p in getattr(self, "live", []):
                    p.unsafe_chunk(1)[0].mul_(0.5)

    def local_objective(self, task_loss, model, ctx):
        self.live = list(model.parameters())
        self._write("local_objective")
        return task_loss

    def client_extras(self, delta, ctx):
        self._write("client_extras")
        return {}

    def aggregate(self, global_params, updates, server_state):
        self._write("aggregate")
        return super().aggregate(global_params, updates, server_state)

    def select_clients(self, round_idx, num_clients, rng):
        self._write("select_clients")
        return super().select_clients(round_idx, num_clients, rng)

    def broadcast(self, round_idx, server_state):
        self._write("broadcast")
        return {}

    def local_steps(self, round_idx, client, max_steps):
        self._write("local_steps")
        return max_steps

    def client_lr(self, round_idx, client):
        self._write("client_lr")
        return super().client_lr(round_idx, client)


@pytest.mark.parametrize(
    "hook",
    ["client_extras", "aggregate", "select_clients", "broadcast", "local_steps", "client_lr"],
)
def test_every_hook_is_followed_by_the_check(profile: Profile, hook: str) -> None:
    cls = type(f"Stash_{hook}", (StashOnSelf,), {"hook": hook})
    fails(profile, cls, f"the recipe's {hook} changed parameter 'linear.weight' in place")


class PlantGrad(FedAvg):
    name = "plant_grad"

    def local_objective(self, task_loss, model, ctx):
        for p in model.parameters():
            p.grad = torch.ones_like(p)  # backward would add to it: an extra step
        return task_loss


def test_planted_gradient(profile: Profile) -> None:
    fails(profile, PlantGrad, "local_objective set a gradient on parameter 'linear.weight'")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def _verify_fails(seal: ParamSeal, *fragments: str) -> None:
    with pytest.raises(TrainingFailure) as info:
        seal.verify("aggregate")
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message


def test_seal_sees_module_conversions_and_storage_swaps() -> None:
    """Bypassing the model view (the real module): dtype, storage, strides and the module tree."""
    model = _model()
    seal = ParamSeal(model)
    seal.verify("aggregate")  # sealing itself changes nothing it checks
    model.double()  # conversions replace buffers outright…
    _verify_fails(seal, "aggregate replaced 'running_mean' of a module of the model")

    model = nn.Sequential(nn.Linear(4, 3))
    seal = ParamSeal(model)
    model.double()  # …and rebind each parameter's data
    _verify_fails(seal, "aggregate changed the dtype torch.float32 -> torch.float64 of parameter '0.weight'")

    model = nn.Sequential(nn.Linear(4, 3))
    seal = ParamSeal(model)
    model.to_empty(device="cpu")
    _verify_fails(seal, "changed the storage, shape or strides of parameter '0.weight'")

    model = _model()
    seal = ParamSeal(model)
    with torch.no_grad():
        model[0].weight.as_strided_((3, 4), (1, 3))  # same storage, other elements
    _verify_fails(seal, "storage, shape or strides of parameter '0.weight'")

    model = _model()
    seal = ParamSeal(model)
    model[2].bias = nn.Parameter(torch.zeros(2))
    _verify_fails(seal, "replaced 'bias' of a module of the model")

    model = _model()
    seal = ParamSeal(model)
    model[2].extra = nn.Parameter(torch.zeros(2))
    _verify_fails(seal, "added or removed a parameter, buffer or submodule")


def test_seal_buffers_and_exact_bits() -> None:
    model = _model()
    seal = ParamSeal(model)
    model(torch.randn(5, 4))  # the forward pass updates batch-norm statistics…
    _verify_fails(seal, "changed buffer '1.running_mean' in place")
    seal.refresh_buffers()  # …which the engine re-seals after its own forward pass
    seal.verify("local_objective")
    with torch.no_grad():
        model[0].weight.unsafe_chunk(1)[0].fill_(float("nan"))
    seal.refresh_params()
    seal.verify("local_objective")  # NaN equals the same NaN bit for bit: no false alarm
    with torch.no_grad():
        model[2].bias.unsafe_chunk(1)[0].neg_()
        model[2].bias.unsafe_chunk(1)[0].zero_()
    seal.refresh_params()
    with torch.no_grad():
        model[2].bias.unsafe_chunk(1)[0].neg_()  # 0.0 -> -0.0: equal as values, not as bits
    _verify_fails(seal, "changed parameter '2.bias' in place (2 of 2 values differ")


def test_sealing_keeps_values_and_objects() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    ParamSeal(model)
    assert list(model.parameters()) == params
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- the model view: an allow-list of module methods ------------------------------------------------------


class ModelCall(FedAvg):
    """Calls ``model.<method>()`` (or a path like ``net[0].double``) at the first step."""

    name = "model_call"
    variant = "default"
    action = ""

    def model_variant(self) -> str:
        return self.variant

    def local_objective(self, task_loss, model, ctx):
        target = model
        *path, method = self.action.split(".")
        for part in path:
            target = target[int(part[4:-1])] if part.startswith("net[") else getattr(target, part)
        if method.endswith("="):
            setattr(target, method[:-1], nn.Parameter(torch.zeros(1)))
        else:
            getattr(target, method)(*(["cpu"] if method in ("to", "to_empty") else []))
        return task_loss


@pytest.mark.parametrize(
    ("variant", "action", "fragment"),
    [
        ("default", "half", "called model.half()"),
        ("default", "float", "called model.float()"),
        ("default", "double", "called model.double()"),
        ("default", "to_empty", "called model.to_empty()"),
        ("default", "to", "called model.to()"),
        ("default", "eval", "called model.eval()"),
        ("default", "linear.bfloat16", "called model.linear.bfloat16()"),
        ("mlp", "net.net[0].double", "called model.net[0].double()"),
        ("default", "linear.weight=", "assigned model.linear.weight"),
        ("default", "cuda", "called model.cuda()"),
        ("default", "features", "asked for model.features"),
    ],
)
def test_module_methods_refused(profile: Profile, variant: str, action: str, fragment: str) -> None:
    cls = type("Call", (ModelCall,), {"variant": variant, "action": action})
    message = fails(profile, cls, "client 0, round 0: the recipe's local_objective", fragment)
    assert "named_parameters" in message  # says what is allowed


class UnboundHalf(FedAvg):
    name = "unbound_half"

    def local_objective(self, task_loss, model, ctx):
        nn.Module.half(model)  # the class's function, handed the view
        return task_loss


def test_unbound_module_method_refused(profile: Profile) -> None:
    fails(profile, UnboundHalf, "local_objective called model._apply()", "change dtype, device, storage")


class SequenceEdit(FedAvg):
    name = "sequence_edit"

    def model_variant(self) -> str:
        return "mlp"

    def local_objective(self, task_loss, model, ctx):
        model.net[1] = nn.Identity()
        return task_loss


def test_item_assignment_refused(profile: Profile) -> None:
    fails(profile, SequenceEdit, "assigned model.net[1]")


class ReadsTheModel(FedAvg):
    """Everything a recipe may legitimately read through the view (and a proximal term, FedProx-style)."""

    name = "reads_the_model"
    seen: dict[str, Any] = {}

    def model_variant(self) -> str:
        return "mlp"

    def local_objective(self, task_loss, model, ctx):
        layers = list(model.net)
        seen = type(self).seen
        seen["len"] = len(model.net)
        seen["first"] = layers[0] is model.net[0]
        seen["training"] = model.training
        seen["state_dict"] = sorted(model.state_dict())
        seen["weight_shape"] = tuple(model.net[0].weight.shape)
        seen["bound"] = hasattr(model.named_parameters, "__self__")
        prox = sum(((p - ctx.global_params[n]) ** 2).sum() for n, p in model.named_parameters())
        return task_loss + 0.01 * prox + 0 * sum(b.sum() for b in model.buffers())


def test_reading_the_model_is_allowed(profile: Profile) -> None:
    result = run_federation(profile, profile.make_recipe(ReadsTheModel), 0)
    assert result.ok
    seen = ReadsTheModel.seen
    assert seen["len"] == 3 and seen["first"] and seen["training"]
    assert seen["state_dict"] == ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
    assert seen["weight_shape"] == (64, 60)
    assert not seen["bound"]  # a closure, not a bound method leading back to the real module


def test_view_is_released_after_the_run() -> None:
    view = ModelView(nn.Sequential(nn.Linear(2, 2)))
    sub = view[0]
    assert id(view) in _integrity._TARGETS and id(sub) in _integrity._TARGETS
    view.release()
    assert not {id(view), id(sub)} & (_integrity._TARGETS.keys() | _integrity._TREES.keys())


# --- private copies: no storage shared with the server or another client ------------------------------------


class RecordsStorage(FedAvg):
    """Keeps every tensor each hook receives or returns (alive, so that no storage is freed and reused)."""

    name = "records_storage"
    seen: dict[str, list[torch.Tensor]] = {}

    def _keep(self, kind: str, *tensors: torch.Tensor) -> None:
        self.seen.setdefault(kind, []).extend(tensors)

    def broadcast(self, round_idx, server_state):
        server_state.setdefault("c", {"control.linear.bias": torch.ones(10)})
        self._keep("server", *server_state["c"].values())
        return server_state["c"]

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == 0:
            self._keep(f"client {ctx.client} round {ctx.round_idx}", *ctx.global_params.values())
            self._keep(f"client {ctx.client} round {ctx.round_idx}", *ctx.server_extras.values())
        return task_loss

    def client_extras(self, delta, ctx):
        upload = {"control.linear.bias": torch.zeros(10)}
        self._keep(f"client {ctx.client} round {ctx.round_idx}", *delta.values(), *upload.values())
        return upload

    def aggregate(self, global_params, updates, server_state):
        self._keep("server", *global_params.values())
        for u in updates:
            self._keep("server", *u.delta.values(), *u.extras.values())
        new = super().aggregate(global_params, updates, server_state)
        self._keep("server", *new.values())
        return new


def test_every_hook_gets_private_copies(profile: Profile) -> None:
    RecordsStorage.seen = {}
    assert run_federation(profile, profile.make_recipe(RecordsStorage), 0).ok
    storages = {
        kind: {t.untyped_storage().data_ptr() for t in tensors}
        for kind, tensors in RecordsStorage.seen.items()
    }
    assert len(storages) == 1 + 3 * ROUNDS
    for kind, mine in storages.items():
        for other, theirs in storages.items():
            if other != kind:
                assert not mine & theirs, f"{kind} and {other} share storage"


class KeepsUpload(FedAvg):
    """A class-3 channel attempt: the server keeps the uploaded extras; each client later writes into the
    tensor it uploaded, hoping the server reads it back. With private copies the server sees the upload."""

    name = "keeps_upload"
    server_saw: list[float] = []

    def client_extras(self, delta, ctx):
        kept = ctx.client_state.get("kept")
        if kept is not None:
            kept.fill_(123.0)  # the client's own tensor: allowed, but it must not reach the server
        upload = {"control.linear.bias": torch.zeros(10)}
        ctx.client_state["kept"] = upload["control.linear.bias"]
        return upload

    def aggregate(self, global_params, updates, server_state):
        for old in server_state.get("inbox", []):
            type(self).server_saw.append(float(old.abs().max()))
        server_state["inbox"] = [u.extras["control.linear.bias"] for u in updates]
        return super().aggregate(global_params, updates, server_state)


def test_upload_kept_by_the_client_is_not_a_channel(profile: Profile) -> None:
    KeepsUpload.server_saw = []
    assert run_federation(profile, profile.make_recipe(KeepsUpload), 0).ok
    assert KeepsUpload.server_saw and set(KeepsUpload.server_saw) == {0.0}


class WritesWhatWasSent(FedAvg):
    name = "writes_what_was_sent"
    target = ""

    def broadcast(self, round_idx, server_state):
        return {"control.linear.bias": torch.ones(10)}

    def local_objective(self, task_loss, model, ctx):
        if self.target == "global_params":
            ctx.global_params["linear.bias"].unsafe_chunk(1)[0].add_(1.0)
        elif self.target == "server_extras":
            ctx.server_extras["control.linear.bias"].unsafe_chunk(1)[0].add_(1.0)
        elif self.target == "replace":
            ctx.global_params["linear.bias"] = torch.zeros(10)
        return task_loss

    def client_extras(self, delta, ctx):
        if self.target == "delta":
            delta["linear.bias"].unsafe_chunk(1)[0].mul_(10.0)
        return {}


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("global_params", "local_objective wrote into ctx.global_params['linear.bias'] in place"),
        ("server_extras", "local_objective wrote into ctx.server_extras['control.linear.bias'] in place"),
        ("replace", "local_objective replaced ctx.global_params['linear.bias']"),
        ("delta", "client_extras wrote into delta['linear.bias'] in place"),
    ],
)
def test_what_was_sent_is_read_only(profile: Profile, target: str, fragment: str) -> None:
    cls = type("Writes", (WritesWhatWasSent,), {"target": target})
    fails(profile, cls, "client 0, round 0: the recipe's", fragment)


class AliasesGlobal(FedAvg):
    """Returns its own server_state tensors as the new global parameters, then changes them in broadcast:
    the engine's copy of the global parameters must not follow."""

    name = "aliases_global"
    received: list[torch.Tensor] = []
    returned: list[torch.Tensor] = []

    def broadcast(self, round_idx, server_state):
        for t in server_state.get("mine", {}).values():
            t.add_(100.0)
        return {}

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == 0 and ctx.client == 0:
            type(self).received.append(ctx.global_params["linear.bias"].clone())
        return task_loss

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        server_state["mine"] = new
        type(self).returned.append(new["linear.bias"].clone())
        return new


def test_aggregate_output_is_copied(profile: Profile) -> None:
    AliasesGlobal.received, AliasesGlobal.returned = [], []
    assert run_federation(profile, profile.make_recipe(AliasesGlobal), 0).ok
    # round 1's clients start from what round 0's aggregate returned, not from the server's later edit
    assert torch.equal(AliasesGlobal.received[1], AliasesGlobal.returned[0])


# --- legit recipes: same results with the checks on and off ----------------------------------------------


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "scaffold"])
def test_legit_recipes_pass_and_train_the_same(profile: Profile, name: str) -> None:
    cls = RECIPES[name]
    on = run_federation(profile, profile.make_recipe(cls), 1)
    off = run_federation(profile, profile.make_recipe(cls), 1, integrity=False)
    assert on.ok and on.steps == off.steps > 0
    assert on.state_dict.keys() == off.state_dict.keys()
    assert all(torch.equal(on.state_dict[k], off.state_dict[k]) for k in on.state_dict)
    assert on.bytes_up == off.bytes_up and on.bytes_down == off.bytes_down
