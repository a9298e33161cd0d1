# ruff: noqa
# ATTACK: rebuild the profile with make_profile and train on profile.data("test") (test-set leakage)
# MUST: rejected:import-not-allowed
# WHY: afr.profiles is not importable; the test split must never influence training or selection
# CATEGORY: test-split
from afr.profiles import load_profile_config, make_profile

from afr.recipe import FedAvg


class Peeker(FedAvg):
    name = "peeker"

    def client_lr(self, round_idx, client):
        profile = make_profile("synthetic", load_profile_config("synthetic"))
        test = profile.data("test")
        self.test_size = sum(len(c) for c in test)
        return self.lr
