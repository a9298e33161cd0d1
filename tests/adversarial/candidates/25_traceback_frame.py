# ruff: noqa
# ATTACK: raise and catch an exception, then follow __traceback__.tb_frame.f_back to the engine's frame globals
# MUST: rejected:forbidden-attribute
# WHY: __traceback__, tb_frame, f_back and f_globals are all forbidden attributes
# CATEGORY: introspection
from afr.recipe import FedAvg


class TracebackFrame(FedAvg):
    name = "traceback_frame"

    def aggregate(self, global_params, updates, server_state):
        try:
            raise ValueError("probe")
        except ValueError as exc:
            frame = exc.__traceback__.tb_frame.f_back
            server_state["engine_globals"] = sorted(frame.f_globals)
        return super().aggregate(global_params, updates, server_state)
