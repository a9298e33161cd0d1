# ruff: noqa
# ATTACK: eval/exec/compile/__import__ of a string built at run time (invisible to a static check)
# MUST: rejected:forbidden-name
# WHY: eval, exec, compile and __import__ are forbidden names
# CATEGORY: dynamic-code
from afr.recipe import FedAvg

PAYLOAD = "__import__('os').system('touch /tmp/afr_adversarial_canary/pwned')"


class DynamicCode(FedAvg):
    name = "dynamic_code"

    def aggregate(self, global_params, updates, server_state):
        eval(PAYLOAD)
        exec(compile(PAYLOAD, "<x>", "exec"))
        __import__("os").getcwd()
        return super().aggregate(global_params, updates, server_state)
