"""Report stage: a self-contained HTML page per problem run and one across problems."""

from kd_edge.report.html import write_index, write_problem_report

__all__ = ["write_index", "write_problem_report"]
