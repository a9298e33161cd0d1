"""The communication contract at run time: SCAFFOLD fits its declared extras; anything else does not."""

from __future__ import annotations

import pytest
import torch

from afr.engine import run_federation
from afr.profiles import CommunicationContract, ContractViolation, make_profile
from afr.recipe import FedAvg, Scaffold


def test_scaffold_runs_within_declared_extras(shared_data) -> None:
    profile = make_profile("tcga_brca", data_dir=shared_data, rounds=2, local_steps=5)
    result = run_federation(profile, profile.make_recipe(Scaffold), seed=0)
    params = 40 * 4  # Linear(39 -> 1), float32
    clients, rounds = 6, 2
    # up: delta + control delta every round; down: params every round + server control from round 2 on
    assert result.bytes_up == rounds * clients * 2 * params
    assert result.bytes_down == rounds * clients * params + (rounds - 1) * clients * params
    fedavg = run_federation(profile, profile.make_recipe(FedAvg), seed=0)
    assert fedavg.bytes_up == rounds * clients * params


def test_scaffold_is_refused_when_the_contract_has_no_control_extra(shared_data) -> None:
    profile = make_profile(
        "tcga_brca",
        data_dir=shared_data,
        rounds=2,
        local_steps=5,
        contract={"upload_extras": {}, "download_extras": {}},
    )
    with pytest.raises(ContractViolation, match="kind 'control' is not in the contract"):
        run_federation(profile, profile.make_recipe(Scaffold), seed=0)


@pytest.mark.parametrize(
    ("extras", "message"),
    [
        ({"secret.fc.weight": torch.zeros(1, 39)}, "not in the contract"),
        ({"control.nope": torch.zeros(1)}, "does not name a model parameter"),
        ({"control.fc.weight": torch.zeros(39, 1)}, "shaped like"),
        ({"control.fc.weight": torch.zeros(1, 39, dtype=torch.int64)}, "not a float"),
        ({"control.fc.weight": "x"}, "shaped like"),
        ([torch.zeros(1)], "must be a dict"),
    ],
)
def test_contract_refuses_bad_payloads(extras, message) -> None:
    params = {"fc.weight": torch.zeros(1, 39), "fc.bias": torch.zeros(1)}
    with pytest.raises(ContractViolation, match=message):
        CommunicationContract().check(extras, params, "upload")


def test_contract_byte_cap() -> None:
    params = {"w": torch.zeros(10)}
    contract = CommunicationContract(upload_extras={"control": 0.5})
    with pytest.raises(ContractViolation, match="over the cap"):
        contract.check({"control.w": torch.zeros(10)}, params, "upload")
    assert CommunicationContract().check({"control.w": torch.zeros(10)}, params, "upload") == 40
    # float64 doubles the bytes: over a 1x cap
    with pytest.raises(ContractViolation, match="over the cap"):
        CommunicationContract().check({"control.w": torch.zeros(10, dtype=torch.float64)}, params, "upload")
