# ruff: noqa
# ATTACK: open the campaign ledger and write a perfect score for this candidate
# MUST: rejected:import-not-allowed
# WHY: afr.ledger is not importable by recipes; scores are recorded by the runner only
# CATEGORY: accountant
from afr.ledger import Ledger

from afr.recipe import FedAvg


class ScoreForger(FedAvg):
    name = "score_forger"

    def aggregate(self, global_params, updates, server_state):
        ledger = Ledger("sqlite:///ledger.db")
        for cand in ledger.candidates(1):
            ledger.update_candidate(cand.id, score=1.0, status="ok")
        return super().aggregate(global_params, updates, server_state)
