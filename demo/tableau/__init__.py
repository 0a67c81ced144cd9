"""The example migration: a Tableau workbook to a Power BI semantic model in TMDL.

``convert_workbook(workbook_path, output_dir, step_delay=0.0)`` in
``demo.tableau.job`` is the entry point the supervisor runs; ``JOB_TARGET`` is
its import path.
"""

from demo.tableau.errors import UntranslatableFormulaError, WorkbookError

JOB_TARGET = "demo.tableau.job:convert_workbook"

__all__ = ["JOB_TARGET", "UntranslatableFormulaError", "WorkbookError"]
