"""Converting the bundled sample workbook, as .twb and as .twbx, into TMDL."""

from __future__ import annotations

import json
import math
import zipfile

import pytest

from demo.tableau.job import convert_workbook
from tests.demo.tmdl_reading import read_relationships, read_table


@pytest.fixture
def converted(tmp_path, sample_path):
    output = tmp_path / "out"
    summary = convert_workbook(str(sample_path), str(output))
    return summary, output / "small-sales.SemanticModel" / "definition"


def test_summary_counts(converted):
    summary, _ = converted
    assert summary["workbook"] == "small-sales.twb"
    assert summary["datasources"] == 2
    assert summary["tables"] == 4
    assert summary["columns"] == 13
    assert summary["measures"] == 4
    assert summary["calculated_columns"] == 2
    assert summary["parameters"] == 1
    assert summary["relationships"] == 2
    assert summary["untranslated"] == 1
    assert len(summary["warnings"]) == 1
    assert "'Running Sales'" in summary["warnings"][0]
    assert "RUNNING_SUM" in summary["warnings"][0]


def test_files_written(converted):
    summary, definition = converted
    expected = {
        "small-sales.SemanticModel/definition.pbism",
        "small-sales.SemanticModel/definition/database.tmdl",
        "small-sales.SemanticModel/definition/model.tmdl",
        "small-sales.SemanticModel/definition/relationships.tmdl",
        "small-sales.SemanticModel/definition/tables/Parameters.tmdl",
        "small-sales.SemanticModel/definition/tables/Orders.tmdl",
        "small-sales.SemanticModel/definition/tables/Customers.tmdl",
        "small-sales.SemanticModel/definition/tables/Products.tmdl",
    }
    assert summary["semantic_model"] == "small-sales.SemanticModel"
    assert set(summary["files"]) == expected
    output = definition.parent.parent
    written = {
        p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()
    }
    assert written == expected


def test_pbism_properties(converted):
    _, definition = converted
    pbism = json.loads((definition.parent / "definition.pbism").read_text("utf-8"))
    assert pbism["version"] == "4.0"
    assert pbism["settings"] == {}
    assert pbism["$schema"].endswith(
        "/semanticModel/definitionProperties/1.0.0/schema.json"
    )
    assert set(pbism) == {"$schema", "version", "settings"}


def test_model_references_tables(converted):
    _, definition = converted
    model = (definition / "model.tmdl").read_text(encoding="utf-8")
    assert model.startswith("model Model\n\tculture: en-US\n")
    for table in ("Parameters", "Orders", "Customers", "Products"):
        assert f"\nref table {table}\n" in model + "\n"
    database = (definition / "database.tmdl").read_text(encoding="utf-8")
    assert database == "database 'small-sales'\n\tcompatibilityLevel: 1567\n"


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        (
            "Orders",
            {
                "Order ID": ("int64", "none"),
                "Order Date": ("dateTime", "none"),
                "Customer ID": ("string", "none"),
                "Product ID": ("string", "none"),
                "Quantity": ("int64", "sum"),
                "Unit Price": ("decimal", "average"),
                "Sales": ("double", "sum"),
            },
        ),
        (
            "Customers",
            {
                "Customer ID": ("string", "none"),
                "Customer Name": ("string", "none"),
                "Segment": ("string", "none"),
            },
        ),
        (
            "Products",
            {
                "Product ID": ("string", "none"),
                "Product Name": ("string", "none"),
                "Category": ("string", "none"),
            },
        ),
    ],
)
def test_table_columns(converted, table, columns):
    _, definition = converted
    parsed = read_table(definition / "tables" / f"{table}.tmdl")
    assert parsed.name == table
    assert parsed.names("column", calculated=False) == list(columns)
    for name, (data_type, summarize_by) in columns.items():
        column = parsed.find("column", name)
        assert column.properties["dataType"] == data_type
        assert column.properties["summarizeBy"] == summarize_by
        assert column.properties["sourceColumn"] == name
        assert "lineageTag" in column.properties


def test_date_column_is_date_only(converted):
    _, definition = converted
    column = read_table(definition / "tables" / "Orders.tmdl").find(
        "column", "Order Date"
    )
    assert column.properties["formatString"] == "Long Date"
    assert column.annotations["UnderlyingDateTimeDataType"] == "Date"


@pytest.mark.parametrize(
    ("name", "expression", "formula"),
    [
        ("Total Sales", "SUM('Orders'[Sales])", "SUM([Sales])"),
        (
            "Customer Count",
            "DISTINCTCOUNT('Orders'[Customer ID])",
            "COUNTD([Customer ID])",
        ),
        (
            "Average Line Total",
            "AVERAGE('Orders'[Line Total])",
            "AVG([Calculation_5120349857205026818])",
        ),
    ],
)
def test_measures(converted, name, expression, formula):
    _, definition = converted
    measure = read_table(definition / "tables" / "Orders.tmdl").find("measure", name)
    assert measure.expression == expression
    assert measure.annotation_json("TableauFormula") == formula
    assert "TableauTranslation" not in measure.annotations
    assert "Tableau formula:" in measure.description
    assert formula in measure.description


@pytest.mark.parametrize(
    ("name", "expression", "data_type"),
    [
        ("Line Total", "'Orders'[Quantity] * 'Orders'[Unit Price]", "double"),
        (
            "Order Size",
            "SWITCH(TRUE(), 'Orders'[Quantity] >= [Large Order Quantity], \"Large\", "
            '\'Orders\'[Quantity] >= 5, "Medium", "Small")',
            "string",
        ),
    ],
)
def test_calculated_columns(converted, name, expression, data_type):
    _, definition = converted
    table = read_table(definition / "tables" / "Orders.tmdl")
    column = table.find("column", name)
    assert column.expression == expression
    assert column.properties["dataType"] == data_type
    assert table.names("column", calculated=True) == ["Line Total", "Order Size"]


def test_if_formula_kept_verbatim(converted, sample_path):
    _, definition = converted
    column = read_table(definition / "tables" / "Orders.tmdl").find(
        "column", "Order Size"
    )
    formula = column.annotation_json("TableauFormula")
    assert formula == (
        'IF [Quantity] >= [Parameters].[Parameter 1] THEN "Large"\r\n'
        'ELSEIF [Quantity] >= 5 THEN "Medium"\r\n'
        'ELSE "Small"\r\n'
        "END"
    )
    assert column.description[-4:] == [
        'IF [Quantity] >= [Parameters].[Parameter 1] THEN "Large"',
        'ELSEIF [Quantity] >= 5 THEN "Medium"',
        'ELSE "Small"',
        "END",
    ]


def test_untranslated_formula_kept(converted):
    _, definition = converted
    measure = read_table(definition / "tables" / "Orders.tmdl").find(
        "measure", "Running Sales"
    )
    assert measure.expression == "BLANK()"
    assert measure.annotations["TableauTranslation"] == "untranslated"
    assert measure.annotation_json("TableauFormula") == "RUNNING_SUM(SUM([Sales]))"
    assert any("Not translated to DAX" in line for line in measure.description)


def test_internal_names_resolved_to_captions(converted):
    _, definition = converted
    text = (definition / "tables" / "Orders.tmdl").read_text(encoding="utf-8")
    declarations = [
        line for line in text.splitlines() if " = " in line and "annotation" not in line
    ]
    assert all("Calculation_" not in line for line in declarations)


def test_parameter_measure(converted):
    _, definition = converted
    table = read_table(definition / "tables" / "Parameters.tmdl")
    measure = table.find("measure", "Large Order Quantity")
    assert measure.expression == "10"
    assert measure.annotation_json("TableauField") == "Parameter 1"
    placeholder = table.find("column", "Placeholder")
    assert "isHidden" in placeholder.properties


def test_relationships(converted):
    _, definition = converted
    relationships = read_relationships(definition / "relationships.tmdl")
    ends = [(r["fromColumn"], r["toColumn"]) for r in relationships]
    assert ends == [
        ("Orders.'Product ID'", "Products.'Product ID'"),
        ("Orders.'Customer ID'", "Customers.'Customer ID'"),
    ]
    assert all("isActive" not in r for r in relationships)


def test_partition_builds_typed_empty_table(converted):
    _, definition = converted
    text = (definition / "tables" / "Orders.tmdl").read_text(encoding="utf-8")
    assert "\tpartition Orders = m\n\t\tmode: import\n" in text
    assert '#"Unit Price" = Currency.Type' in text
    assert '#"Order Date" = date' in text


def test_indentation_uses_tabs(converted):
    _, definition = converted
    for path in definition.rglob("*.tmdl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert not line.startswith(" "), f"{path.name}: {line!r}"


def test_twbx_gives_same_model(tmp_path, sample_path, converted):
    _, from_twb = converted
    packaged = tmp_path / "small-sales.twbx"
    with zipfile.ZipFile(packaged, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(sample_path, "small-sales.twb")
        archive.writestr("Data/small-sales.xlsx", b"spreadsheet bytes")
    summary = convert_workbook(str(packaged), str(tmp_path / "packaged"))
    assert summary["tables"] == 4
    from_twbx = tmp_path / "packaged" / "small-sales.SemanticModel" / "definition"
    for path in from_twb.rglob("*.tmdl"):
        twin = from_twbx / path.relative_to(from_twb)
        assert twin.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_existing_output_not_overwritten(tmp_path, sample_path):
    existing = tmp_path / "small-sales.SemanticModel"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        convert_workbook(str(sample_path), str(tmp_path))
    assert (existing / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["small-sales.SemanticModel"]


def test_step_delay_pauses_each_step(tmp_path, sample_path, monkeypatch):
    pauses = []
    monkeypatch.setattr("demo.tableau.job.time.sleep", pauses.append)
    convert_workbook(str(sample_path), str(tmp_path / "out"), step_delay=0.25)
    # Opening, 2 datasources, 4 tables, relationships, writing, and the
    # sample's 7 calculated fields.
    assert pauses == [0.25] * 16


def test_no_step_delay_no_pause(tmp_path, sample_path, monkeypatch):
    pauses = []
    monkeypatch.setattr("demo.tableau.job.time.sleep", pauses.append)
    convert_workbook(str(sample_path), str(tmp_path / "out"))
    assert pauses == []


@pytest.mark.parametrize("step_delay", [-0.1, 2.5, math.nan, math.inf, "0.2"])
def test_step_delay_out_of_range(tmp_path, sample_path, step_delay):
    with pytest.raises(ValueError, match="invalid step_delay"):
        convert_workbook(str(sample_path), str(tmp_path / "out"), step_delay)
    assert not (tmp_path / "out").exists()


def test_deep_formula_kept_untranslated(tmp_path, sample_path):
    """A formula too deep to translate leaves the conversion standing."""
    deep = "+".join(["[Quantity]"] * 500)
    text = sample_path.read_text(encoding="utf-8")
    marker = "<calculation class='tableau' formula='"
    assert marker in text
    start = text.index(marker) + len(marker)
    end = text.index("'", start)
    workbook = tmp_path / "deep.twb"
    workbook.write_text(text[:start] + deep + text[end:], encoding="utf-8")

    summary = convert_workbook(str(workbook), str(tmp_path / "out"))

    assert any("nests deeper than 100" in warning for warning in summary["warnings"])
