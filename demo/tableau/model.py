"""The semantic model the converter builds from a workbook and writes as TMDL."""

from __future__ import annotations

import dataclasses
from typing import Literal

#: TMDL column data types the converter emits.
DataType = Literal["string", "int64", "double", "decimal", "dateTime", "boolean"]


@dataclasses.dataclass
class Column:
    """A column loaded from the data source."""

    name: str
    data_type: DataType
    source_column: str
    summarize_by: str = "none"
    is_date_only: bool = False
    is_hidden: bool = False
    #: Tableau's field name (``[Order ID]``), used to resolve formula references.
    tableau_name: str = ""


@dataclasses.dataclass
class Calculation:
    """A Tableau calculated field, written as a measure or a calculated column."""

    name: str
    tableau_name: str
    formula: str
    datasource: str
    is_measure: bool = False
    is_parameter: bool = False
    data_type: DataType = "string"
    #: The DAX expression; a placeholder when ``translated`` is False.
    expression: str = "BLANK()"
    translated: bool = True
    #: Why the formula could not be translated; empty when it was.
    reason: str = ""
    #: Extra text for the TMDL description, such as a parameter's domain.
    description: str = ""


@dataclasses.dataclass
class Table:
    """A model table: one Tableau relation, or the parameters of a workbook."""

    name: str
    datasource: str
    #: Where Tableau reads the data: the relation's table or custom SQL.
    source_description: str = ""
    custom_sql: str = ""
    connection_class: str = ""
    columns: list[Column] = dataclasses.field(default_factory=list)
    measures: list[Calculation] = dataclasses.field(default_factory=list)
    calculated_columns: list[Calculation] = dataclasses.field(default_factory=list)
    is_parameter_table: bool = False
    #: Name of the hidden column written for a table without columns.
    placeholder_column: str = "Placeholder"

    def column_names(self) -> set[str]:
        return {c.name for c in self.columns} | {
            c.name for c in self.calculated_columns
        }


@dataclasses.dataclass
class Relationship:
    """A many-to-one relationship between two model columns."""

    from_table: str
    from_column: str
    to_table: str
    to_column: str
    is_active: bool = True
    origin: str = ""


@dataclasses.dataclass
class SemanticModel:
    """Everything written into the TMDL folder."""

    name: str
    tables: list[Table] = dataclasses.field(default_factory=list)
    relationships: list[Relationship] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)
