"""Evaluation protocol: finals with fresh paired seeds, held-out settings, classification of gains.

The evaluator lives outside anything an agent's code can reach: candidates run in the sandbox and
return weights; every test and held-out metric is computed here, by the parent process.
"""

from ._classify import (
    LABELS,
    ClassificationRules,
    FinalistEvidence,
    Verdict,
    classify,
    classify_all,
    load_rules,
    render_table_markdown,
    survival_table,
)
from ._finals import Finalist, FinalsPlan, finals_runs_needed, run_finals, select_finalists
from ._report import CampaignFindings, collect_findings, render_worked_example, write_report

__all__ = [
    "Finalist",
    "FinalsPlan",
    "finals_runs_needed",
    "run_finals",
    "select_finalists",
    "FinalistEvidence",
    "ClassificationRules",
    "Verdict",
    "LABELS",
    "classify",
    "classify_all",
    "load_rules",
    "survival_table",
    "render_table_markdown",
    "CampaignFindings",
    "collect_findings",
    "write_report",
    "render_worked_example",
]
