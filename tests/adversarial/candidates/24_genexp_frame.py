# ruff: noqa
# ATTACK: generator expressions are allowed: use g.gi_frame.f_back.f_back.f_locals to read the engine's locals
# MUST: rejected:forbidden-attribute
# WHY: gi_frame, f_back and f_locals are forbidden attributes (frames reach the engine's variables)
# CATEGORY: introspection
from afr.recipe import FedAvg


class GenFrame(FedAvg):
    name = "gen_frame"

    def local_objective(self, task_loss, model, ctx):
        gen = (x for x in range(1))
        frame = gen.gi_frame.f_back.f_back
        self.engine_locals = dict(frame.f_locals)
        return task_loss
