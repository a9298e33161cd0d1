"""Evaluation protocol: finals with fresh paired seeds, held-out settings, classification of gains.

The evaluator lives outside anything an agent's code can reach: candidates run in the sandbox and
return weights; every test and held-out metric is computed here, by the parent process.
"""

from ._finals import Finalist, FinalsPlan, finals_runs_needed, run_finals, select_finalists

__all__ = ["Finalist", "FinalsPlan", "finals_runs_needed", "run_finals", "select_finalists"]
