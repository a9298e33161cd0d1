# ruff: noqa
# ATTACK: call libc system() through ctypes to run a shell command
# MUST: rejected:import-not-allowed
# WHY: ctypes is not an allowed import; unvalidated, the audit hook refuses importing/using ctypes
# CATEGORY: imports
# SANDBOX: failed
import ctypes

from afr.recipe import FedAvg


class NativeCall(FedAvg):
    name = "native_call"

    def model_variant(self):
        libc = ctypes.CDLL(None)
        libc.system(b"touch /tmp/afr_adversarial_canary/pwned")
        return "default"
