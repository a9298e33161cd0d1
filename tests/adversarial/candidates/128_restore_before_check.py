# ruff: noqa
# ATTACK: keep live parameter views in client_state, push the parameters at one step and undo the push at the
# ATTACK: next, hoping a check made only at the end of local training (or of the round) sees nothing
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: the engine compares the parameters after every call of a hook, so a change that is undone later is still seen
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class RestoreBeforeCheck(FedAvg):
    name = "restore_before_check"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            for name, p in model.named_parameters():
                view = p.unsafe_split(1)[0]
                if ctx.step % 2 == 0:
                    view.add_(0.5)
                else:
                    view.sub_(0.5)
        return task_loss
