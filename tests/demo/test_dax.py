"""Translating Tableau formulas to DAX, and the formulas that are not translated."""

from __future__ import annotations

import pytest

from demo.tableau.dax import DaxTranslator, FieldInfo, uses_aggregation
from demo.tableau.errors import UntranslatableFormulaError
from demo.tableau.formula_parser import parse_formula

FIELDS = {
    "Sales": FieldInfo("column", "Sales", "Orders", "number"),
    "Quantity": FieldInfo("column", "Quantity", "Orders", "number"),
    "Region": FieldInfo("column", "Region", "Orders", "string"),
    "Order Date": FieldInfo("column", "Order Date", "Orders", "date"),
    "Segment": FieldInfo("column", "Segment", "Customers", "string"),
    "Calculation_1": FieldInfo("measure", "Total Sales", None, "number"),
    "Parameter 1": FieldInfo("measure", "Threshold", None, "number"),
}


class Resolver:
    def resolve(self, parts):
        info = FIELDS.get(parts[-1])
        if info is None:
            raise UntranslatableFormulaError(f"unknown field {parts!r}")
        return info


def as_measure(formula):
    return DaxTranslator(Resolver(), "Orders", measure=True).translate(
        parse_formula(formula)
    )


def as_column(formula):
    return DaxTranslator(Resolver(), "Orders", measure=False).translate(
        parse_formula(formula)
    )


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("SUM([Sales])", "SUM('Orders'[Sales])"),
        ("AVG([Sales])", "AVERAGE('Orders'[Sales])"),
        ("MIN([Sales])", "MIN('Orders'[Sales])"),
        ("MAX([Sales])", "MAX('Orders'[Sales])"),
        ("COUNT([Sales])", "COUNT('Orders'[Sales])"),
        ("COUNTD([Region])", "DISTINCTCOUNT('Orders'[Region])"),
        (
            "SUM([Sales]) / SUM([Quantity])",
            "DIVIDE(SUM('Orders'[Sales]), SUM('Orders'[Quantity]))",
        ),
        (
            "SUM([Sales] * [Quantity])",
            "SUMX('Orders', 'Orders'[Sales] * 'Orders'[Quantity])",
        ),
        ("[Calculation_1] * 2", "[Total Sales] * 2"),
        (
            "SUM([Sales]) - (SUM([Quantity]) - 1)",
            "SUM('Orders'[Sales]) - (SUM('Orders'[Quantity]) - 1)",
        ),
        ("ATTR([Region])", "SELECTEDVALUE('Orders'[Region])"),
    ],
)
def test_measure_translation(formula, expected):
    assert as_measure(formula) == expected


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("[Sales] * [Quantity]", "'Orders'[Sales] * 'Orders'[Quantity]"),
        (
            "IF [Sales] > 100 THEN 'High' ELSE 'Low' END",
            'IF(\'Orders\'[Sales] > 100, "High", "Low")',
        ),
        (
            "IF [Sales] > 100 THEN 'High' ELSEIF [Sales] > 10 THEN 'Mid' END",
            "SWITCH(TRUE(), 'Orders'[Sales] > 100, \"High\", "
            "'Orders'[Sales] > 10, \"Mid\")",
        ),
        ("IIF([Sales] > 0, 1, 0)", "IF('Orders'[Sales] > 0, 1, 0)"),
        (
            "CASE [Region] WHEN 'N' THEN 1 WHEN 'S' THEN 2 ELSE 0 END",
            'SWITCH(\'Orders\'[Region], "N", 1, "S", 2, 0)',
        ),
        (
            "[Region] + ' / ' + [Segment]",
            "'Orders'[Region] & \" / \" & RELATED('Customers'[Segment])",
        ),
        (
            "[Sales] > 1 AND NOT [Quantity] = 0 OR [Sales] < 0",
            "'Orders'[Sales] > 1 && NOT('Orders'[Quantity] = 0) || 'Orders'[Sales] < 0",
        ),
        ("[Sales] != [Quantity]", "'Orders'[Sales] <> 'Orders'[Quantity]"),
        ("-([Sales] - 1)", "-('Orders'[Sales] - 1)"),
        ("[Sales] % 7", "MOD('Orders'[Sales], 7)"),
        ("[Sales] ^ 2", "POWER('Orders'[Sales], 2)"),
        ("ZN([Sales])", "COALESCE('Orders'[Sales], 0)"),
        ("ISNULL([Region])", "ISBLANK('Orders'[Region])"),
        ("ROUND([Sales], 2)", "ROUND('Orders'[Sales], 2)"),
        ("INT([Sales])", "TRUNC('Orders'[Sales])"),
        ("STR([Quantity])", "CONVERT('Orders'[Quantity], STRING)"),
        ("CONTAINS([Region], 'th')", "CONTAINSSTRINGEXACT('Orders'[Region], \"th\")"),
        ("DATEPART('month', [Order Date])", "MONTH('Orders'[Order Date])"),
        (
            "DATEDIFF('day', [Order Date], TODAY())",
            "DATEDIFF('Orders'[Order Date], TODAY(), DAY)",
        ),
        (
            "DATETRUNC('month', [Order Date])",
            "DATE(YEAR('Orders'[Order Date]), MONTH('Orders'[Order Date]), 1)",
        ),
        ("#2024-08-31#", "DATE(2024, 8, 31)"),
        ("#31-AUG-2024#", "DATE(2024, 8, 31)"),
        (
            "[Quantity] >= [Parameters].[Parameter 1]",
            "'Orders'[Quantity] >= [Threshold]",
        ),
        ("'It''s'", '"It\'s"'),
        ('"say ""hi"""', '"say ""hi"""'),
        ("'two\nlines'", '"two" & UNICHAR(10) & "lines"'),
        ("Sales * 2 // doubled", "'Orders'[Sales] * 2"),
        ("NULL", "BLANK()"),
        (
            "{ FIXED [Region] : SUM([Sales]) }",
            "CALCULATE(SUM('Orders'[Sales]), ALLEXCEPT('Orders', 'Orders'[Region]))",
        ),
        ("{ MAX([Sales]) }", "CALCULATE(MAX('Orders'[Sales]), ALL('Orders'))"),
    ],
)
def test_row_level_translation(formula, expected):
    assert as_column(formula) == expected


@pytest.mark.parametrize(
    ("formula", "reason"),
    [
        ("RUNNING_SUM(SUM([Sales]))", "table calculation RUNNING_SUM"),
        ("LOOKUP(SUM([Sales]), -1)", "table calculation LOOKUP"),
        ("{ INCLUDE [Region] : SUM([Sales]) }", "INCLUDE level of detail"),
        (
            "REGEXP_MATCH([Region], 'N.*')",
            "function REGEXP_MATCH has no DAX translation",
        ),
        ("COUNTD([Sales] * 2)", "COUNTD of an expression"),
        ("SUM([Unknown])", "unknown field"),
        ("DATEPART('iso-week', [Order Date])", "DATEPART of 'iso-week'"),
        ("#someday#", "date literal #someday#"),
    ],
)
def test_untranslatable(formula, reason):
    with pytest.raises(UntranslatableFormulaError, match=reason):
        as_measure(formula)


@pytest.mark.parametrize(
    "formula",
    ["IF [Sales] > 1 THEN 2", "SUM([Sales]", "[Sales] +", "CASE [Region] END", "@"],
)
def test_parse_errors(formula):
    with pytest.raises(UntranslatableFormulaError):
        parse_formula(formula)


@pytest.mark.parametrize(
    ("formula", "is_measure"),
    [
        ("SUM([Sales])", True),
        ("[Sales] * 2", False),
        ("MAX([Sales], [Quantity])", False),
        ("{ FIXED [Region] : SUM([Sales]) }", False),
        ("[Calculation_1] / 2", True),
        ("WINDOW_SUM(1)", True),
    ],
)
def test_aggregation_detected(formula, is_measure):
    def refers_to_measure(parts):
        return FIELDS.get(parts[-1], FIELDS["Sales"]).kind == "measure"

    assert uses_aggregation(parse_formula(formula), refers_to_measure) is is_measure


@pytest.mark.parametrize(
    "formula",
    ["+".join(["[Sales]"] * 500), "(" * 200 + "1" + ")" * 200],
)
def test_deep_formula_rejected_with_depth(formula):
    with pytest.raises(UntranslatableFormulaError, match="nests deeper than 100"):
        parse_formula(formula)
