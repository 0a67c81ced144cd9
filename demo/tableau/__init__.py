"""The example migration: a Tableau workbook to a Power BI semantic model in TMDL.

``convert_workbook(workbook_path, output_dir)`` in ``demo.tableau.job`` is the
entry point the supervisor runs.
"""

from demo.tableau.errors import UntranslatableFormulaError, WorkbookError

__all__ = ["UntranslatableFormulaError", "WorkbookError"]
