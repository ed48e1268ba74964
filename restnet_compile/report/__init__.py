"""Human-readable build reports."""

from restnet_compile.report.markdown import render_report, variant_table

__all__ = ["render_report", "variant_table"]
