"""The migration job: convert one Tableau workbook into a Power BI semantic model.

The supervisor runs ``convert_workbook`` in a child process. Each step (opening
the workbook, each datasource, each table, the relationships, writing the
files) advances the step counter, so the progress bar moves per table, and
every step and calculated field is logged with ``logging_helper``. Options
carry only the step name and small counts, because the task page shows them.
A ``step_delay`` pauses after each step and calculated field, so a person
watching the demo can follow the progress bar and cancel a run of a real
workbook, which otherwise takes well under a second.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from demo.tableau.dax import column_reference
from demo.tableau.errors import WorkbookError
from demo.tableau.extract import Datasource, WorkbookConverter
from demo.tableau.model import Calculation
from demo.tableau.reader import read_workbook
from demo.tableau.tmdl import semantic_model_folder, write_model
from worker import increment_progress, logging_helper, set_task_info

#: Passed to ``set_task_info``; inside a supervised child the supervisor's task
#: id is kept and only the step count is used.
TASK_LABEL = "tableau-to-tmdl"
#: Largest ``step_delay`` in seconds.
MAX_STEP_DELAY = 2.0


def convert_workbook(
    workbook_path: str, output_dir: str, step_delay: float = 0.0
) -> dict[str, Any]:
    """Convert ``workbook_path`` (.twb or .twbx) into a Power BI semantic model.

    The model is written as ``output_dir/<workbook>.SemanticModel`` with the
    TMDL files in its ``definition`` folder. ``step_delay`` is the pause in
    seconds (0 to ``MAX_STEP_DELAY``) after each step and each calculated
    field. Returns a JSON-safe summary: counts of datasources,
    tables, columns, measures, calculated columns, parameters and
    relationships, the formulas left untranslated, the warnings and the files
    written (relative to ``output_dir``). Raises ``WorkbookError`` naming the
    file when it is not a readable Tableau workbook, and ValueError for a
    ``step_delay`` out of range.
    """
    _check_step_delay(step_delay)
    path = Path(workbook_path)
    logging_helper(f"Opening workbook {path.name}", options={"step": "open"})
    converter = WorkbookConverter(read_workbook(path), model_name=path.stem)
    if not converter.datasources:
        raise WorkbookError(f"{path.name!r} has no datasources to convert")
    run = _Conversion(converter, step_delay)
    run.start(path.name)
    for source in converter.datasources:
        run.convert_datasource(source)
    run.convert_relationships()
    files = write_model(converter.model, output_dir)
    summary = summarize(converter, path.name, output_dir, files)
    run.step(
        f"Wrote {len(files)} files to {summary['semantic_model']}",
        {"step": "write", "files": len(files)},
    )
    warnings = len(summary["warnings"])
    logging_helper(
        f"Converted {path.name}: {summary['tables']} tables, "
        f"{summary['columns']} columns, {summary['measures']} measures, "
        f"{summary['calculated_columns']} calculated columns, "
        f"{summary['relationships']} relationships, "
        f"{warnings} {'warning' if warnings == 1 else 'warnings'}",
        progress=100,
        options={"step": "done"},
    )
    return summary


def _check_step_delay(step_delay: float) -> None:
    valid = isinstance(step_delay, (int, float)) and math.isfinite(step_delay)
    if not valid or not 0 <= step_delay <= MAX_STEP_DELAY:
        raise ValueError(
            f"invalid step_delay {step_delay!r}: expected 0 to {MAX_STEP_DELAY} seconds"
        )


class _Conversion:
    """Log the converter's work step by step and forward its warnings."""

    def __init__(self, converter: WorkbookConverter, step_delay: float) -> None:
        self._converter = converter
        self._step_delay = step_delay
        self._warnings_sent = 0

    def start(self, workbook_name: str) -> None:
        sources = self._converter.datasources
        tables = sum(self._converter.planned_tables(s) for s in sources)
        calculations = sum(len(s.calculations) for s in sources)
        # Opening, each datasource, table and calculation, relationships,
        # writing. The counter stops at the total, so a miscount cannot pass 100.
        set_task_info(TASK_LABEL, 1 + len(sources) + tables + calculations + 2)
        self.step(
            f"Opened {workbook_name}: {len(sources)} datasources, {tables} tables",
            {"step": "open", "datasources": len(sources), "tables": tables},
        )

    def step(self, message: str, options: dict[str, Any]) -> None:
        increment_progress()
        logging_helper(message, options=options)
        self._pause()

    def _pause(self) -> None:
        if self._step_delay:
            time.sleep(self._step_delay)

    def convert_datasource(self, source: Datasource) -> None:
        self.step(
            f"Datasource '{source.caption}': {len(source.relations)} relations, "
            f"{len(source.calculations)} calculated fields",
            {
                "step": "datasource",
                "relations": len(source.relations),
                "calculations": len(source.calculations),
            },
        )
        for table in self._converter.add_tables(source):
            self.step(
                f"Table '{table.name}': {len(table.columns)} columns",
                {"step": "table", "columns": len(table.columns)},
            )
        for calculation in self._converter.add_calculations(source):
            self._log_calculation(calculation)

    def _log_calculation(self, calculation: Calculation) -> None:
        increment_progress()
        self._send_warnings()
        self._pause()
        if not calculation.translated:
            return
        kind = "Calculated column"
        if calculation.is_parameter:
            kind = "Parameter"
        elif calculation.is_measure:
            kind = "Measure"
        logging_helper(
            # Names are quoted as written; repr() would double backslashes.
            f"{kind} '{calculation.name}' = {calculation.expression}",
            options={"step": "calculation"},
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
        "semantic_model": semantic_model_folder(model),
        "datasources": len(converter.datasources),
        "tables": len(model.tables),
        "columns": sum(len(t.columns) for t in model.tables),
        "measures": sum(c.is_measure and not c.is_parameter for c in calculations),
        "calculated_columns": sum(not c.is_measure for c in calculations),
        "parameters": sum(c.is_parameter for c in calculations),
        "relationships": len(model.relationships),
        "untranslated": sum(not c.translated for c in calculations),
        "warnings": list(model.warnings),
        "files": [f.relative_to(output).as_posix() for f in files],
    }
