"""Write a ``SemanticModel`` as a TMDL folder, as Power BI Desktop projects hold it.

Layout: a ``<model>.SemanticModel`` folder, the semantic model item of a Power BI
project (PBIP), with ``definition.pbism`` (the item's format version and
settings) and the TMDL files: ``definition/database.tmdl``,
``definition/model.tmdl``, one ``definition/tables/<table>.tmdl`` per table and
``definition/relationships.tmdl`` when there are relationships. TMDL indents
with tabs. Names that are not plain
identifiers are quoted in single quotes, with a quote inside doubled. A
description is a run of ``///`` lines before the object it describes.

NOTE: the output follows Microsoft's TMDL documentation and Power BI project
samples, but no test loads it into Power BI Desktop or the Tabular Object
Model.

Every table gets an import partition whose M expression builds an empty table
with the right column types, so the model opens without access to the
workbook's data source; a description on the table says where Tableau read
the data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from demo.tableau.model import Calculation, Column, Relationship, SemanticModel, Table
from demo.tableau.names import file_stem

COMPATIBILITY_LEVEL = 1567
CULTURE = "en-US"
#: Contents of ``definition.pbism``: format version 4.0, as public Power BI
#: projects with a TMDL ``definition`` folder use it, and no settings.
PBISM = {
    "$schema": "https://developer.microsoft.com/json-schemas/fabric/item/"
    "semanticModel/definitionProperties/1.0.0/schema.json",
    "version": "4.0",
    "settings": {},
}
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Fixed so that converting the same workbook twice gives the same lineage tags.
_LINEAGE_NAMESPACE = uuid.UUID("6f0b7f43-3f7e-4d8e-9a55-2b2f0c1d8a10")
_M_TYPES = {
    "string": "text",
    "int64": "Int64.Type",
    "double": "number",
    "decimal": "Currency.Type",
    "boolean": "logical",
}
_FORMAT_STRINGS = {"int64": "0", "decimal": "#,0.00"}


def tmdl_name(name: str) -> str:
    """Return ``name`` as a TMDL object name, quoted when it is not an identifier."""
    if _PLAIN_NAME.fullmatch(name):
        return name
    return "'" + name.replace("'", "''") + "'"


def tmdl_text(value: str) -> str:
    """Return a text property value, in double quotes when it needs them."""
    needs_quotes = (
        not value or value != value.strip() or "\n" in value or value.startswith('"')
    )
    if needs_quotes:
        return '"' + value.replace('"', '""') + '"'
    return value


def render_pbism() -> str:
    """Return the text of ``definition.pbism``, the semantic model's properties."""
    return json.dumps(PBISM, indent=2) + "\n"


def annotation_json(value: str) -> str:
    """Return ``value`` as a one-line JSON string, for annotations of any text."""
    return json.dumps(value, ensure_ascii=False)


def write_model(model: SemanticModel, output_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``model`` as ``output_dir/<model>.SemanticModel`` and return its files.

    The folder is written beside its final place and renamed into it, so a
    cancelled or failed conversion leaves no half-written semantic model.
    Raises FileExistsError if the ``.SemanticModel`` folder already exists.
    """
    output = Path(output_dir)
    final = output / semantic_model_folder(model)
    if final.exists():
        raise FileExistsError(
            f"{str(final)!r} already exists; convert into an empty output folder"
        )
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".semantic-model-", dir=output))
    try:
        relative = _write_files(model, staging)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [final / path for path in relative]


def semantic_model_folder(model: SemanticModel) -> str:
    """Return the name of the model's ``.SemanticModel`` folder, safe as a file name."""
    return f"{file_stem(model.name, set())}.SemanticModel"


def _write_files(model: SemanticModel, folder: Path) -> list[Path]:
    definition = Path("definition")
    files: dict[Path, str] = {
        Path("definition.pbism"): render_pbism(),
        definition / "database.tmdl": render_database(model),
        definition / "model.tmdl": render_model(model),
    }
    taken: set[str] = set()
    for table in model.tables:
        stem = file_stem(table.name, taken)
        files[definition / "tables" / f"{stem}.tmdl"] = render_table(model, table)
    if model.relationships:
        files[definition / "relationships.tmdl"] = render_relationships(model)
    (folder / definition / "tables").mkdir(parents=True)
    for path, text in files.items():
        (folder / path).write_text(text, encoding="utf-8", newline="\n")
    return list(files)


def lineage_tag(model: SemanticModel, *parts: str) -> str:
    return str(uuid.uuid5(_LINEAGE_NAMESPACE, "\x00".join((model.name, *parts))))


def render_database(model: SemanticModel) -> str:
    return (
        f"database {tmdl_name(model.name)}\n"
        f"\tcompatibilityLevel: {COMPATIBILITY_LEVEL}\n"
    )


def render_model(model: SemanticModel) -> str:
    order = json.dumps([table.name for table in model.tables], ensure_ascii=False)
    lines = [
        "model Model",
        f"\tculture: {CULTURE}",
        "\tdefaultPowerBIDataSourceVersion: powerBI_V3",
        f"\tsourceQueryCulture: {CULTURE}",
        "",
        f"annotation PBI_QueryOrder = {order}",
        "",
        f"annotation TableauWorkbook = {annotation_json(model.name)}",
        "",
    ]
    lines += [f"ref table {tmdl_name(table.name)}" for table in model.tables]
    return "\n".join(lines) + "\n"


def render_table(model: SemanticModel, table: Table) -> str:
    lines = _description(_table_description(table), indent=0)
    lines += [
        f"table {tmdl_name(table.name)}",
        f"\tlineageTag: {lineage_tag(model, 'table', table.name)}",
        "",
    ]
    for measure in table.measures:
        lines += _calculation(model, table, measure)
    for column in table.columns:
        lines += _column(model, table, column)
    if not table.columns:
        lines += _placeholder_column(model, table)
    for calculated in table.calculated_columns:
        lines += _calculation(model, table, calculated)
    lines += _partition(table)
    lines += [
        f"\tannotation TableauDatasource = {annotation_json(table.datasource)}",
        "",
    ]
    if table.custom_sql:
        sql = annotation_json(table.custom_sql)
        lines += [f"\tannotation TableauCustomSQL = {sql}", ""]
    return "\n".join(lines)


def _table_description(table: Table) -> str:
    if table.is_parameter_table:
        return "The parameters of the Tableau workbook, as measures."
    source = table.connection_class or "unknown"
    where = "a custom SQL query" if table.custom_sql else repr(table.source_description)
    return (
        f"Tableau datasource {table.datasource!r}, {source} connection, reading "
        f"{where}. The partition is an empty placeholder: point it at the data "
        "source before refreshing."
    )


def _description(text: str, indent: int) -> list[str]:
    prefix = "\t" * indent + "///"
    return [f"{prefix} {line}".rstrip() for line in text.splitlines()]


def _column(model: SemanticModel, table: Table, column: Column) -> list[str]:
    lines = [
        f"\tcolumn {tmdl_name(column.name)}",
        f"\t\tdataType: {column.data_type}",
    ]
    format_string = _format_string(column.data_type, column.is_date_only)
    if format_string:
        lines.append(f"\t\tformatString: {format_string}")
    if column.is_hidden:
        lines.append("\t\tisHidden")
    lines += [
        f"\t\tlineageTag: {lineage_tag(model, 'column', table.name, column.name)}",
        f"\t\tsummarizeBy: {column.summarize_by}",
        f"\t\tsourceColumn: {tmdl_text(column.source_column)}",
        "",
        "\t\tannotation SummarizationSetBy = Automatic",
        "",
    ]
    if column.data_type == "dateTime" and column.is_date_only:
        lines += ["\t\tannotation UnderlyingDateTimeDataType = Date", ""]
    return lines


def _placeholder_column(model: SemanticModel, table: Table) -> list[str]:
    # A model table must have a column, so an empty one gets this one, with no data.
    name = table.placeholder_column
    return [
        f"\tcolumn {tmdl_name(name)}",
        "\t\tdataType: string",
        "\t\tisHidden",
        f"\t\tlineageTag: {lineage_tag(model, 'column', table.name, name)}",
        "\t\tsummarizeBy: none",
        f"\t\tsourceColumn: {tmdl_text(name)}",
        "",
    ]


def _format_string(data_type: str, is_date_only: bool) -> str:
    if data_type == "dateTime":
        return "Long Date" if is_date_only else "General Date"
    return _FORMAT_STRINGS.get(data_type, "")


def _calculation(
    model: SemanticModel, table: Table, calculation: Calculation
) -> list[str]:
    keyword = "measure" if calculation.is_measure else "column"
    lines = _description(_calculation_description(calculation), indent=1)
    lines.append(
        f"\t{keyword} {tmdl_name(calculation.name)} = {calculation.expression}"
    )
    if not calculation.is_measure:
        lines.append(f"\t\tdataType: {calculation.data_type}")
        format_string = _format_string(calculation.data_type, is_date_only=False)
        if format_string:
            lines.append(f"\t\tformatString: {format_string}")
    lines.append(
        f"\t\tlineageTag: {lineage_tag(model, keyword, table.name, calculation.name)}"
    )
    if not calculation.is_measure:
        lines.append("\t\tsummarizeBy: none")
    lines += [
        "",
        f"\t\tannotation TableauFormula = {annotation_json(calculation.formula)}",
        "",
    ]
    lines += [
        f"\t\tannotation TableauField = {annotation_json(calculation.tableau_name)}",
        "",
    ]
    if not calculation.translated:
        lines += ["\t\tannotation TableauTranslation = untranslated", ""]
    return lines


def _calculation_description(calculation: Calculation) -> str:
    kind = "parameter" if calculation.is_parameter else "calculated field"
    parts = [
        f"Tableau {kind} [{calculation.tableau_name}] of datasource "
        f"{calculation.datasource!r}."
    ]
    if calculation.description:
        parts.append(calculation.description)
    if not calculation.translated:
        parts.append(
            f"Not translated to DAX: {calculation.reason}. The expression is a "
            "placeholder; rewrite it from the Tableau formula below."
        )
    parts.append("Tableau formula:")
    parts.append(calculation.formula)
    return "\n".join(parts)


def _partition(table: Table) -> list[str]:
    if table.columns:
        fields = ", ".join(f"{_m_name(c.name)} = {_m_type(c)}" for c in table.columns)
    else:
        fields = f"{_m_name(table.placeholder_column)} = text"
    where = table.source_description or table.datasource
    return [
        f"\tpartition {tmdl_name(table.name)} = m",
        "\t\tmode: import",
        "\t\tsource =",
        "\t\t\t\tlet",
        f"\t\t\t\t    // Tableau read this table from {where!r}.",
        f"\t\t\t\t    Source = #table(type table [{fields}], {{}})",
        "\t\t\t\tin",
        "\t\t\t\t    Source",
        "",
    ]


def _m_name(name: str) -> str:
    return '#"' + name.replace('"', '""') + '"'


def _m_type(column: Column) -> str:
    if column.data_type == "dateTime":
        return "date" if column.is_date_only else "datetime"
    return _M_TYPES[column.data_type]


def render_relationships(model: SemanticModel) -> str:
    lines: list[str] = []
    for relationship in model.relationships:
        lines += _relationship(model, relationship)
    return "\n".join(lines)


def _relationship(model: SemanticModel, relationship: Relationship) -> list[str]:
    ends = (
        relationship.from_table,
        relationship.from_column,
        relationship.to_table,
        relationship.to_column,
    )
    name = lineage_tag(model, "relationship", *ends)
    lines = [f"relationship {name}"]
    if not relationship.is_active:
        lines.append("\tisActive: false")
    lines += [
        f"\tfromColumn: {tmdl_name(ends[0])}.{tmdl_name(ends[1])}",
        f"\ttoColumn: {tmdl_name(ends[2])}.{tmdl_name(ends[3])}",
        "",
        f"\tannotation TableauOrigin = {relationship.origin or 'join'}",
        "",
    ]
    return lines
