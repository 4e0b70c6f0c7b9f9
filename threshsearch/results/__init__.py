"""What a study leaves behind: exported front members, the report, the trials table."""

from threshsearch.results.export import (
    ResultFile,
    export_baselines,
    export_front,
    is_result_document,
    pareto_trials,
    read_result,
)
from threshsearch.results.report import write_report
from threshsearch.results.trials import trials_frame

__all__ = [
    "ResultFile",
    "export_baselines",
    "export_front",
    "is_result_document",
    "pareto_trials",
    "read_result",
    "trials_frame",
    "write_report",
]
