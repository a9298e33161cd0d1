# ruff: noqa
# ATTACK: import sys and climb the call stack with sys._getframe(1).f_locals to reach the engine's profile and data
# MUST: rejected:import-not-allowed,forbidden-attribute
# WHY: sys is not importable and frame attributes (_getframe, f_locals, f_back) are forbidden
# CATEGORY: imports
import sys

from afr.recipe import FedAvg


class FrameClimber(FedAvg):
    name = "frame_climber"

    def local_objective(self, task_loss, model, ctx):
        frame = sys._getframe(1)
        while frame is not None and "profile" not in frame.f_locals:
            frame = frame.f_back
        self.stolen = frame.f_locals["profile"] if frame is not None else None
        return task_loss
