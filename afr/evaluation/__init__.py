"""Evaluation protocol: who goes to the finals, how many seeds they need, and what their numbers mean.

Pure: it reads numbers (from the ledger, or given) and returns verdicts; it never trains. The campaign
schedules the finals (``afr/campaign/_finals.py``) and the parent process computes every test and held-out
metric from returned weights, out of reach of any agent's code.
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
from ._finals import Finalist, final_seed_count, finals_runs_needed, select_finalists
from ._racing import (
    PENDING_KEY,
    RacingSettings,
    RungHistory,
    next_promotion,
    race_order,
    rung_histories,
    seed_spread,
)
from ._report import (
    CampaignFindings,
    arm_failures,
    closing_summary,
    collect_findings,
    render_worked_example,
    write_report,
)
from ._stats import minimum_detectable_effect, seeds_for_effect
from ._table import (
    TASK_NEUTRAL_KEYS,
    SurvivalTable,
    TabledCampaign,
    collect_survival_table,
    render_table_csv,
    table_command,
    task_config,
)

__all__ = [
    "PENDING_KEY",
    "RacingSettings",
    "RungHistory",
    "next_promotion",
    "race_order",
    "seed_spread",
    "rung_histories",
    "arm_failures",
    "closing_summary",
    "Finalist",
    "finals_runs_needed",
    "final_seed_count",
    "select_finalists",
    "minimum_detectable_effect",
    "seeds_for_effect",
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
    "SurvivalTable",
    "TabledCampaign",
    "collect_survival_table",
    "render_table_csv",
    "table_command",
    "task_config",
    "TASK_NEUTRAL_KEYS",
]
