# ruff: noqa
# ATTACK: switch the model to eval mode from the local objective (dropout off, batch-norm statistics
# ATTACK: frozen for the engine's next forward passes): the mode is the engine's to set
# MUST: contained:failed
# WHY: module methods that change the model's mode, dtype, device or storage are refused (allow-list)
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class EvalMode(FedAvg):
    name = "model_eval_mode"

    def local_objective(self, task_loss, model, ctx):
        model.eval()
        return task_loss
