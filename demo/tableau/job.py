"""The migration job: convert one Tableau workbook into a Power BI TMDL folder.

The supervisor runs ``convert_workbook`` in a child process. Each step (opening
the workbook, each datasource, each table, the relationships, writing the
files) advances the step counter, so the progress bar moves per table, and
every step and calculated field is logged with ``logging_helper``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demo.tableau.dax import column_reference
from demo.tableau.errors import WorkbookError
from demo.tableau.extract import Datasource, WorkbookConverter
from demo.tableau.model import Calculation
from demo.tableau.reader import read_workbook
from demo.tableau.tmdl import write_model
from worker import increment_progress, logging_helper, set_task_info

#: Passed to ``set_task_info``; inside a supervised child the supervisor's task
#: id is kept and only the step count is used.
TASK_LABEL = "tableau-to-tmdl"


def convert_workbook(workbook_path: str, output_dir: str) -> dict[str, Any]:
    """Convert ``workbook_path`` (.twb or .twbx) into a TMDL folder in ``output_dir``.

    Returns a JSON-safe summary: counts of datasources, tables, columns,
    measures, calculated columns, parameters and relationships, the formulas
    left untranslated, the warnings and the files written (relative to
    ``output_dir``). Raises ``WorkbookError`` naming the file when it is not a
    readable Tableau workbook.
    """
    path = Path(workbook_path)
    logging_helper(f"Opening workbook {path.name}", options={"step": "open"})
    converter = WorkbookConverter(read_workbook(path), model_name=path.stem)
    if not converter.datasources:
        raise WorkbookError(f"{path.name!r} has no datasources to convert")
    run = _Conversion(converter)
    run.start(path.name)
    for source in converter.datasources:
        run.convert_datasource(source)
    run.convert_relationships()
    files = write_model(converter.model, output_dir)
    run.step(
        f"Wrote {len(files)} TMDL files to {output_dir}",
        {"step": "write", "files": len(files)},
    )
    summary = summarize(converter, path.name, output_dir, files)
    logging_helper(
        f"Converted {path.name}: {summary['tables']} tables, "
        f"{summary['columns']} columns, {summary['measures']} measures, "
        f"{summary['calculated_columns']} calculated columns, "
        f"{summary['relationships']} relationships, "
        f"{len(summary['warnings'])} warnings",
        progress=100,
        options={"step": "done", "summary": summary},
    )
    return summary


class _Conversion:
    """Log the converter's work step by step and forward its warnings."""

    def __init__(self, converter: WorkbookConverter) -> None:
        self._converter = converter
        self._warnings_sent = 0

    def start(self, workbook_name: str) -> None:
        sources = self._converter.datasources
        tables = sum(self._converter.planned_tables(s) for s in sources)
        # Opening, each datasource, each table, relationships, writing.
        set_task_info(TASK_LABEL, 1 + len(sources) + tables + 2)
        self.step(
            f"Opened {workbook_name}: {len(sources)} datasources, {tables} tables",
            {"step": "open", "datasources": len(sources), "tables": tables},
        )

    def step(self, message: str, options: dict[str, Any]) -> None:
        increment_progress()
        logging_helper(message, options=options)

    def convert_datasource(self, source: Datasource) -> None:
        self.step(
            f"Datasource {source.caption!r}: {len(source.relations)} relations, "
            f"{len(source.calculations)} calculated fields",
            {"step": "datasource", "datasource": source.caption},
        )
        for table in self._converter.add_tables(source):
            self.step(
                f"Table {table.name!r}: {len(table.columns)} columns",
                {"step": "table", "table": table.name, "columns": len(table.columns)},
            )
        for calculation in self._converter.add_calculations(source):
            self._log_calculation(calculation)

    def _log_calculation(self, calculation: Calculation) -> None:
        self._send_warnings()
        if not calculation.translated:
            return
        kind = "Calculated column"
        if calculation.is_parameter:
            kind = "Parameter"
        elif calculation.is_measure:
            kind = "Measure"
        logging_helper(
            f"{kind} {calculation.name!r} = {calculation.expression}",
            options={"step": "calculation", "tableau_formula": calculation.formula},
        )

    def convert_relationships(self) -> None:
        relationships = self._converter.add_relationships()
        self._send_warnings()
        for relationship in relationships:
            state = "" if relationship.is_active else " (inactive)"
            start = column_reference(relationship.from_table, relationship.from_column)
            end = column_reference(relationship.to_table, relationship.to_column)
            logging_helper(
                f"Relationship {start} -> {end}{state}",
                options={"step": "relationship"},
            )
        self.step(
            f"Relationships: {len(relationships)}",
            {"step": "relationships", "relationships": len(relationships)},
        )

    def _send_warnings(self) -> None:
        warnings = self._converter.model.warnings
        for warning in warnings[self._warnings_sent :]:
            logging_helper(warning, message_type="warning", options={"step": "warning"})
        self._warnings_sent = len(warnings)


def summarize(
    converter: WorkbookConverter,
    workbook_name: str,
    output_dir: str,
    files: list[Path],
) -> dict[str, Any]:
    """Return the counts and warnings of a finished conversion, JSON-safe."""
    model = converter.model
    calculations = [
        c for t in model.tables for c in (*t.measures, *t.calculated_columns)
    ]
    output = Path(output_dir)
    return {
        "workbook": workbook_name,
        "output_dir": str(output_dir),
        "datasources": len(converter.datasources),
        "tables": len(model.tables),
        "columns": sum(len(t.columns) for t in model.tables),
        "measures": sum(c.is_measure and not c.is_parameter for c in calculations),
        "calculated_columns": sum(not c.is_measure for c in calculations),
        "parameters": sum(c.is_parameter for c in calculations),
        "relationships": len(model.relationships),
        "untranslated": sum(not c.translated for c in calculations),
        "warnings": list(model.warnings),
        "files": [str(f.relative_to(output)) for f in files],
    }
