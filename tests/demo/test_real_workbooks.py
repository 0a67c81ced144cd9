"""Converting real Tableau workbooks: every table and calculation comes out.

The expected counts are taken from each workbook's XML here, independently of
the converter: the distinct leaf relations of every top-level datasource, and
its calculated fields.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from demo.tableau.job import convert_workbook
from tests.demo.tmdl_reading import read_relationships, read_table

WORKBOOKS = ["sales-dashboard.twb", "data-load-analysis.twb"]
_CONTAINERS = {"join", "collection"}


def expected_counts(path):
    """Count tables, calculations and parameters straight from the XML."""
    root = ET.parse(path).getroot()
    tables = calculations = parameters = 0
    for datasource in root.findall("datasources/datasource"):
        fields = [
            c for c in datasource.findall("column") if c.find("calculation") is not None
        ]
        if datasource.get("name") == "Parameters":
            tables += 1
            parameters += len(fields)
            continue
        calculations += len(fields)
        connection = datasource.find("connection")
        leaves = {
            element.get("name")
            for element in (connection.iter() if connection is not None else [])
            if element.tag.endswith("relation")
            and element.get("type") not in _CONTAINERS
        }
        tables += max(1, len(leaves))
    return tables, calculations, parameters


def expected_relationships(path):
    """Count the distinct column equalities of join clauses, per datasource."""
    root = ET.parse(path).getroot()
    pairs = set()
    for datasource in root.findall("datasources/datasource"):
        for clause in datasource.iter("clause"):
            for equality in clause.iter("expression"):
                sides = equality.findall("expression")
                if equality.get("op") == "=" and len(sides) == 2:
                    ends = tuple(side.get("op") for side in sides)
                    pairs.add((datasource.get("name"), ends))
    return len(pairs)


def declared_calculations(definition):
    measures = calculated = 0
    for path in (definition / "tables").glob("*.tmdl"):
        table = read_table(path)
        measures += len(table.names("measure"))
        calculated += len(table.names("column", calculated=True))
    return measures, calculated


@pytest.mark.parametrize("name", WORKBOOKS)
def test_real_workbook_counts(tmp_path, real_workbooks, name):
    path = real_workbooks / name
    tables, calculations, parameters = expected_counts(path)
    summary = convert_workbook(str(path), str(tmp_path))
    definition = tmp_path / summary["semantic_model"] / "definition"

    assert summary["tables"] == tables
    assert len(list((definition / "tables").glob("*.tmdl"))) == tables
    assert summary["measures"] + summary["calculated_columns"] == calculations
    assert summary["parameters"] == parameters
    measures, calculated = declared_calculations(definition)
    assert measures == summary["measures"] + summary["parameters"]
    assert calculated == summary["calculated_columns"]
    assert summary["relationships"] == expected_relationships(path)


@pytest.mark.parametrize("name", WORKBOOKS)
def test_real_workbook_formulas_kept(tmp_path, real_workbooks, name):
    path = real_workbooks / name
    root = ET.parse(path).getroot()
    formulas = sorted(
        calculation.get("formula")
        for calculation in root.findall("datasources/datasource/column/calculation")
    )
    summary = convert_workbook(str(path), str(tmp_path))
    tables = tmp_path / summary["semantic_model"] / "definition" / "tables"
    kept = sorted(
        item.annotation_json("TableauFormula")
        for table_file in tables.glob("*.tmdl")
        for item in read_table(table_file).objects
        if "TableauFormula" in item.annotations
    )
    assert kept == formulas


def test_real_workbook_names_and_untranslated(tmp_path, real_workbooks):
    summary = convert_workbook(
        str(real_workbooks / "data-load-analysis.twb"), str(tmp_path)
    )
    definition = tmp_path / summary["semantic_model"] / "definition"
    declarations = [
        line
        for table_file in (definition / "tables").glob("*.tmdl")
        for line in table_file.read_text(encoding="utf-8").splitlines()
        if re.match(r"^\t(measure|column) ", line)
    ]
    assert declarations
    assert not [line for line in declarations if "Calculation_" in line]
    assert summary["untranslated"] == len(summary["warnings"]) - sum(
        "relationship" in w or "join" in w for w in summary["warnings"]
    )
    relationships = read_relationships(definition / "relationships.tmdl")
    assert len(relationships) == summary["relationships"]
