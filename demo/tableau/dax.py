"""Translate parsed Tableau formulas into DAX.

The translation is best effort. What it cannot express faithfully (table
calculations, INCLUDE/EXCLUDE level of detail, functions without a DAX
counterpart) raises ``UntranslatableFormulaError`` with the reason, and the
converter keeps the original formula beside a placeholder.

References become ``'Table'[Column]`` for columns and ``[Name]`` for measures.
Aggregating an expression rather than a column becomes the iterator form
(``SUM(IF …)`` becomes ``SUMX('Table', IF(…))``), and ``{ FIXED [d] : agg }``
becomes ``CALCULATE(agg, ALLEXCEPT('Table', 'Table'[d]))``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Literal, Protocol

from demo.tableau.errors import UntranslatableFormulaError
from demo.tableau.formula_parser import (
    Binary,
    Call,
    Case,
    Constant,
    DateLiteral,
    Field,
    If,
    LevelOfDetail,
    Node,
    Number,
    String,
    Unary,
    children,
    iter_nodes,
)

ValueKind = Literal["string", "number", "boolean", "date", "unknown"]

#: Tableau aggregations and the DAX function for a column and for an expression.
AGGREGATIONS: dict[str, tuple[str, str | None]] = {
    "SUM": ("SUM", "SUMX"),
    "AVG": ("AVERAGE", "AVERAGEX"),
    "MIN": ("MIN", "MINX"),
    "MAX": ("MAX", "MAXX"),
    "COUNT": ("COUNT", "COUNTX"),
    "COUNTD": ("DISTINCTCOUNT", None),
    "MEDIAN": ("MEDIAN", "MEDIANX"),
    "ATTR": ("SELECTEDVALUE", None),
    "STDEV": ("STDEV.S", "STDEVX.S"),
    "STDEVP": ("STDEV.P", "STDEVX.P"),
    "VAR": ("VAR.S", "VARX.S"),
    "VARP": ("VAR.P", "VARX.P"),
}

#: Tableau table calculations: they depend on the layout of a view, which a
#: semantic model does not have.
TABLE_CALCULATIONS = frozenset(
    {
        "LOOKUP", "PREVIOUS_VALUE", "INDEX", "FIRST", "LAST", "SIZE", "TOTAL",
        "RANK", "RANK_DENSE", "RANK_MODIFIED", "RANK_PERCENTILE", "RANK_UNIQUE",
        "RUNNING_SUM", "RUNNING_AVG", "RUNNING_MIN", "RUNNING_MAX",
        "RUNNING_COUNT", "WINDOW_SUM", "WINDOW_AVG", "WINDOW_MIN", "WINDOW_MAX",
        "WINDOW_COUNT", "WINDOW_MEDIAN", "WINDOW_STDEV", "WINDOW_STDEVP",
        "WINDOW_VAR", "WINDOW_VARP", "WINDOW_PERCENTILE", "WINDOW_CORR",
        "WINDOW_COVAR", "WINDOW_COVARP",
    }
)  # fmt: skip

_SIMPLE_FUNCTIONS: dict[str, tuple[str, ValueKind, tuple[int, ...]]] = {
    # Tableau name: (DAX name, result kind, allowed argument counts)
    "ABS": ("ABS", "number", (1,)),
    "SQRT": ("SQRT", "number", (1,)),
    "EXP": ("EXP", "number", (1,)),
    "LN": ("LN", "number", (1,)),
    "SIGN": ("SIGN", "number", (1,)),
    "POWER": ("POWER", "number", (2,)),
    "PI": ("PI", "number", (0,)),
    "UPPER": ("UPPER", "string", (1,)),
    "LOWER": ("LOWER", "string", (1,)),
    "TRIM": ("TRIM", "string", (1,)),
    "LEN": ("LEN", "number", (1,)),
    "LEFT": ("LEFT", "string", (2,)),
    "RIGHT": ("RIGHT", "string", (2,)),
    "YEAR": ("YEAR", "number", (1,)),
    "MONTH": ("MONTH", "number", (1,)),
    "DAY": ("DAY", "number", (1,)),
    "QUARTER": ("QUARTER", "number", (1,)),
    "WEEK": ("WEEKNUM", "number", (1,)),
    "TODAY": ("TODAY", "date", (0,)),
    "NOW": ("NOW", "date", (0,)),
    "MAKEDATE": ("DATE", "date", (3,)),
    "MAKETIME": ("TIME", "date", (3,)),
    "DIV": ("QUOTIENT", "number", (2,)),
    "IFNULL": ("COALESCE", "unknown", (2,)),
    "ISNULL": ("ISBLANK", "boolean", (1,)),
    "REPLACE": ("SUBSTITUTE", "string", (3,)),
    "CHAR": ("UNICHAR", "string", (1,)),
    "ASCII": ("UNICODE", "number", (1,)),
}

_DATE_PARTS = {
    "year": "YEAR",
    "quarter": "QUARTER",
    "month": "MONTH",
    "week": "WEEKNUM",
    "day": "DAY",
    "weekday": "WEEKDAY",
    "hour": "HOUR",
    "minute": "MINUTE",
    "second": "SECOND",
}
_DATE_NAME_FORMATS = {"year": "yyyy", "month": "mmmm", "weekday": "dddd", "day": "d"}
_DATEDIFF_INTERVALS = {
    "year": "YEAR",
    "quarter": "QUARTER",
    "month": "MONTH",
    "week": "WEEK",
    "day": "DAY",
    "hour": "HOUR",
    "minute": "MINUTE",
    "second": "SECOND",
}
_DATEADD_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_DATEADD_DAYS = {"day": 1, "week": 7}
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d-%b-%Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
)

# DAX operator precedence: a higher number binds tighter, and functions and
# literals are atoms.
_ATOM = 100
_PRECEDENCE = {"-u": 7, "*": 6, "-": 5, "+": 5, "&": 4, "AND": 2, "OR": 1}
_PRECEDENCE |= dict.fromkeys(("=", "<>", "<", ">", "<=", ">="), 3)
_DAX_OPERATORS = {"AND": "&&", "OR": "||"}


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """The model object a Tableau field reference resolves to."""

    kind: Literal["column", "measure"]
    name: str
    #: The table of a column; None for measures.
    table: str | None
    value_kind: ValueKind


class Resolver(Protocol):
    def resolve(self, parts: tuple[str, ...]) -> FieldInfo:
        """Return what ``parts`` names, or raise UntranslatableFormulaError."""


@dataclasses.dataclass(frozen=True)
class _Dax:
    text: str
    kind: ValueKind
    precedence: int = _ATOM


def quote_table(name: str) -> str:
    """Return a DAX table reference: ``'Name'`` with quotes doubled."""
    return "'" + name.replace("'", "''") + "'"


def quote_column(name: str) -> str:
    """Return a DAX column or measure reference: ``[Name]`` with ``]`` doubled."""
    return "[" + name.replace("]", "]]") + "]"


def column_reference(table: str, column: str) -> str:
    return quote_table(table) + quote_column(column)


def uses_aggregation(node: Node, is_measure: Callable[[tuple[str, ...]], bool]) -> bool:
    """Return True if the formula evaluates in filter context (a measure).

    That is the case when it aggregates outside a level of detail expression,
    uses a table calculation, or refers to a field that is itself a measure.
    """
    if isinstance(node, LevelOfDetail):
        return False
    if isinstance(node, Call):
        if node.name in TABLE_CALCULATIONS:
            return True
        if node.name in AGGREGATIONS and not (
            node.name in ("MIN", "MAX") and len(node.args) == 2
        ):
            return True
    if isinstance(node, Field):
        return is_measure(node.parts)
    return any(uses_aggregation(child, is_measure) for child in children(node))


def field_references(node: Node) -> list[tuple[str, ...]]:
    """Return every field reference in the formula, in reading order."""
    return [n.parts for n in iter_nodes(node) if isinstance(n, Field)]


class DaxTranslator:
    """Translate one formula for a measure or a calculated column of ``home_table``."""

    def __init__(self, resolver: Resolver, home_table: str, *, measure: bool) -> None:
        self._resolver = resolver
        self._home_table = home_table
        # The table whose row context the expression is in; None in filter context.
        self._row_table: str | None = None if measure else home_table

    def translate(self, node: Node) -> str:
        """Return the DAX expression for ``node``."""
        return self._emit(node).text

    def _emit(self, node: Node) -> _Dax:
        if isinstance(node, Number):
            text = "0" + node.text if node.text.startswith(".") else node.text
            return _Dax(text, "number")
        if isinstance(node, String):
            return _string_literal(node.value)
        if isinstance(node, DateLiteral):
            return _Dax(_date_literal(node.text), "date")
        if isinstance(node, Constant):
            text = {"TRUE": "TRUE()", "FALSE": "FALSE()", "NULL": "BLANK()"}
            kind: ValueKind = "unknown" if node.name == "NULL" else "boolean"
            return _Dax(text[node.name], kind)
        if isinstance(node, Field):
            return self._field(node)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, If):
            return self._if(node)
        if isinstance(node, Case):
            return self._case(node)
        if isinstance(node, LevelOfDetail):
            return self._level_of_detail(node)
        return self._call(node)

    def _field(self, node: Field) -> _Dax:
        info = self._resolver.resolve(node.parts)
        if info.kind == "measure" or info.table is None:
            return _Dax(quote_column(info.name), info.value_kind)
        reference = column_reference(info.table, info.name)
        # NOTE: RELATED is valid only from the many side of a relationship; a
        # formula that reads the many side from the one side stays invalid DAX.
        if self._row_table is not None and self._row_table != info.table:
            reference = f"RELATED({reference})"
        return _Dax(reference, info.value_kind)

    def _unary(self, node: Unary) -> _Dax:
        operand = self._emit(node.operand)
        if node.op == "NOT":
            return _Dax(f"NOT({operand.text})", "boolean")
        text = _wrap(operand, _PRECEDENCE["-u"], right=True)
        return _Dax(f"-{text}", operand.kind, _PRECEDENCE["-u"])

    def _binary(self, node: Binary) -> _Dax:
        left, right = self._emit(node.left), self._emit(node.right)
        if node.op == "/":
            return _Dax(f"DIVIDE({left.text}, {right.text})", "number")
        if node.op == "%":
            return _Dax(f"MOD({left.text}, {right.text})", "number")
        if node.op == "^":
            return _Dax(f"POWER({left.text}, {right.text})", "number")
        op = _DAX_OPERATORS.get(node.op, node.op)
        kind: ValueKind = "number"
        if node.op == "+" and "string" in (left.kind, right.kind):
            op, kind = "&", "string"
        elif _PRECEDENCE[node.op] <= 3:
            kind = "boolean"
        elif "date" in (left.kind, right.kind) and node.op in "+-":
            kind = "date"
        precedence = _PRECEDENCE[node.op if op != "&" else op]
        text = f"{_wrap(left, precedence)} {op} {_wrap(right, precedence, right=True)}"
        return _Dax(text, kind, precedence)

    def _if(self, node: If) -> _Dax:
        values = [self._emit(value) for _, value in node.branches]
        conditions = [self._emit(condition).text for condition, _ in node.branches]
        otherwise = []
        if node.otherwise is not None:
            otherwise.append(self._emit(node.otherwise).text)
        kind = next((v.kind for v in values if v.kind != "unknown"), "unknown")
        if len(values) == 1:
            args = [conditions[0], values[0].text, *otherwise]
            return _Dax(f"IF({', '.join(args)})", kind)
        pairs = [
            part
            for c, v in zip(conditions, values, strict=True)
            for part in (c, v.text)
        ]
        return _Dax(f"SWITCH(TRUE(), {', '.join(pairs + otherwise)})", kind)

    def _case(self, node: Case) -> _Dax:
        subject = self._emit(node.subject).text
        results = [self._emit(result) for _, result in node.whens]
        pairs = []
        for (when, _), result in zip(node.whens, results, strict=True):
            pairs += [self._emit(when).text, result.text]
        if node.otherwise is not None:
            pairs.append(self._emit(node.otherwise).text)
        kind = next((r.kind for r in results if r.kind != "unknown"), "unknown")
        return _Dax(f"SWITCH({subject}, {', '.join(pairs)})", kind)

    def _level_of_detail(self, node: LevelOfDetail) -> _Dax:
        if node.kind in ("INCLUDE", "EXCLUDE"):
            raise UntranslatableFormulaError(
                f"{node.kind} level of detail expressions depend on the view"
            )
        dimensions = [self._dimension(d) for d in node.dimensions]
        tables = {table for table, _ in dimensions}
        if len(tables) > 1:
            raise UntranslatableFormulaError(
                f"FIXED dimensions come from several tables {sorted(tables)!r}"
            )
        table = tables.pop() if tables else self._first_table(node.expression)
        saved, self._row_table = self._row_table, None
        try:
            inner = self._emit(node.expression)
        finally:
            self._row_table = saved
        if dimensions:
            columns = ", ".join(column_reference(t, c) for t, c in dimensions)
            scope = f"ALLEXCEPT({quote_table(table)}, {columns})"
        else:
            scope = f"ALL({quote_table(table)})"
        return _Dax(f"CALCULATE({inner.text}, {scope})", inner.kind)

    def _dimension(self, node: Node) -> tuple[str, str]:
        info = self._resolver.resolve(node.parts) if isinstance(node, Field) else None
        if info is None or info.kind != "column" or info.table is None:
            raise UntranslatableFormulaError(
                "FIXED dimensions other than plain columns are not translated"
            )
        return info.table, info.name

    def _first_table(self, node: Node) -> str:
        for parts in field_references(node):
            info = self._resolver.resolve(parts)
            if info.kind == "column" and info.table is not None:
                return info.table
        return self._home_table

    def _call(self, node: Call) -> _Dax:
        if node.name in TABLE_CALCULATIONS:
            raise UntranslatableFormulaError(
                f"table calculation {node.name} depends on the layout of a view"
            )
        if node.name in ("MIN", "MAX") and len(node.args) == 2:
            return self._function(node.name, node.args, "number")
        if node.name in AGGREGATIONS:
            return self._aggregation(node)
        if node.name in _SIMPLE_FUNCTIONS:
            dax_name, kind, arities = _SIMPLE_FUNCTIONS[node.name]
            _check_arity(node, arities)
            return self._function(dax_name, node.args, kind)
        handler = _SPECIAL_FUNCTIONS.get(node.name)
        if handler is None:
            raise UntranslatableFormulaError(
                f"function {node.name} has no DAX translation"
            )
        return handler(self, node)

    def _function(self, name: str, args: tuple[Node, ...], kind: ValueKind) -> _Dax:
        texts = ", ".join(self._emit(arg).text for arg in args)
        return _Dax(f"{name}({texts})", kind)

    def _aggregation(self, node: Call) -> _Dax:
        _check_arity(node, (1,))
        column_function, iterator = AGGREGATIONS[node.name]
        argument = node.args[0]
        info = (
            self._resolver.resolve(argument.parts)
            if isinstance(argument, Field)
            else None
        )
        if info is not None and info.kind == "measure":
            return _Dax(quote_column(info.name), info.value_kind)
        kind: ValueKind = "number" if node.name in ("COUNT", "COUNTD") else "unknown"
        if info is not None and info.table is not None:
            column = column_reference(info.table, info.name)
            return _Dax(
                f"{column_function}({column})",
                kind if kind != "unknown" else info.value_kind,
            )
        if iterator is None:
            raise UntranslatableFormulaError(
                f"{node.name} of an expression rather than a column is not translated"
            )
        table = self._first_table(argument)
        saved, self._row_table = self._row_table, table
        try:
            inner = self._emit(argument)
        finally:
            self._row_table = saved
        return _Dax(f"{iterator}({quote_table(table)}, {inner.text})", inner.kind)

    def _args(self, node: Call) -> list[_Dax]:
        return [self._emit(arg) for arg in node.args]


def _string_literal(value: str) -> _Dax:
    # Line breaks become UNICHAR(10) so that every expression fits on one line.
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    quoted = ['"' + line.replace('"', '""') + '"' for line in lines]
    if len(quoted) == 1:
        return _Dax(quoted[0], "string")
    return _Dax(" & UNICHAR(10) & ".join(quoted), "string", _PRECEDENCE["&"])


def _wrap(operand: _Dax, precedence: int, *, right: bool = False) -> str:
    weaker = operand.precedence < precedence
    if weaker or (right and operand.precedence == precedence):
        return f"({operand.text})"
    return operand.text


def _check_arity(node: Call, arities: tuple[int, ...]) -> None:
    if len(node.args) not in arities:
        allowed = " or ".join(map(str, arities))
        raise UntranslatableFormulaError(
            f"{node.name} takes {allowed} arguments, not {len(node.args)}"
        )


def _date_literal(text: str) -> str:
    for pattern in _DATE_FORMATS:
        try:
            moment = datetime.datetime.strptime(text, pattern)
        except ValueError:
            continue
        date = f"DATE({moment.year}, {moment.month}, {moment.day})"
        if moment.time() == datetime.time():
            return date
        return f"{date} + TIME({moment.hour}, {moment.minute}, {moment.second})"
    raise UntranslatableFormulaError(f"date literal #{text}# has an unknown format")


def _date_part(node: Call) -> str:
    part = node.args[0] if node.args else None
    if not isinstance(part, String):
        raise UntranslatableFormulaError(
            f"{node.name} needs a literal date part such as 'month'"
        )
    return part.value.lower()


def _round(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1, 2))
    args = self._args(node)
    digits = args[1].text if len(args) == 2 else "0"
    return _Dax(f"ROUND({args[0].text}, {digits})", "number")


def _significance(dax_name: str) -> Callable[[DaxTranslator, Call], _Dax]:
    def translate(self: DaxTranslator, node: Call) -> _Dax:
        _check_arity(node, (1,))
        return _Dax(f"{dax_name}({self._args(node)[0].text}, 1)", "number")

    return translate


def _log(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1, 2))
    args = self._args(node)
    base = args[1].text if len(args) == 2 else "10"
    return _Dax(f"LOG({args[0].text}, {base})", "number")


def _zn(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f"COALESCE({self._args(node)[0].text}, 0)", "number")


def _iif(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (3, 4))
    condition, then, otherwise = self._args(node)[:3]
    return _Dax(f"IF({condition.text}, {then.text}, {otherwise.text})", then.kind)


def _str(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f"CONVERT({self._args(node)[0].text}, STRING)", "string")


def _int(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    # Tableau's INT truncates toward zero like TRUNC, but DAX's INT rounds down.
    return _Dax(f"TRUNC({self._args(node)[0].text})", "number")


def _float(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f"CONVERT({self._args(node)[0].text}, DOUBLE)", "number")


def _mid(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (2, 3))
    args = self._args(node)
    length = args[2].text if len(args) == 3 else f"LEN({args[0].text})"
    return _Dax(f"MID({args[0].text}, {args[1].text}, {length})", "string")


def _contains(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (2,))
    text, part = self._args(node)
    return _Dax(f"CONTAINSSTRINGEXACT({text.text}, {part.text})", "boolean")


def _starts_or_ends(dax_name: str) -> Callable[[DaxTranslator, Call], _Dax]:
    def translate(self: DaxTranslator, node: Call) -> _Dax:
        _check_arity(node, (2,))
        text, part = self._args(node)
        return _Dax(
            f"{dax_name}({text.text}, LEN({part.text})) = {part.text}", "boolean", 3
        )

    return translate


def _find(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (2, 3))
    args = self._args(node)
    start = args[2].text if len(args) == 3 else "1"
    # Tableau returns 0 when the text is missing, so DAX's FIND gets 0 as default.
    return _Dax(f"FIND({args[1].text}, {args[0].text}, {start}, 0)", "number")


def _space(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f'REPT(" ", {self._args(node)[0].text})', "string")


def _square(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f"POWER({self._args(node)[0].text}, 2)", "number")


def _iso_weekday(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f"WEEKDAY({self._args(node)[0].text}, 2)", "number")


def _iso_week(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    return _Dax(f"WEEKNUM({self._args(node)[0].text}, 21)", "number")


def _datepart(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (2, 3))
    part = _date_part(node)
    if part not in _DATE_PARTS:
        raise UntranslatableFormulaError(f"DATEPART of {part!r} is not translated")
    return _Dax(f"{_DATE_PARTS[part]}({self._emit(node.args[1]).text})", "number")


def _datename(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (2, 3))
    part = _date_part(node)
    if part not in _DATE_NAME_FORMATS:
        raise UntranslatableFormulaError(f"DATENAME of {part!r} is not translated")
    date = self._emit(node.args[1]).text
    return _Dax(f'FORMAT({date}, "{_DATE_NAME_FORMATS[part]}")', "string")


def _datetrunc(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (2, 3))
    part = _date_part(node)
    date = self._emit(node.args[1]).text
    starts = {
        "year": f"DATE(YEAR({date}), 1, 1)",
        "quarter": f"DATE(YEAR({date}), QUARTER({date}) * 3 - 2, 1)",
        "month": f"DATE(YEAR({date}), MONTH({date}), 1)",
        "day": f"DATE(YEAR({date}), MONTH({date}), DAY({date}))",
    }
    if part not in starts:
        raise UntranslatableFormulaError(f"DATETRUNC to {part!r} is not translated")
    return _Dax(starts[part], "date")


def _dateadd(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (3,))
    part = _date_part(node)
    amount, date = self._emit(node.args[1]), self._emit(node.args[2])
    if part in _DATEADD_MONTHS:
        months = _DATEADD_MONTHS[part]
        count = amount.text if months == 1 else f"{months} * {_wrap(amount, 6)}"
        return _Dax(f"EDATE({date.text}, {count})", "date")
    if part in _DATEADD_DAYS:
        days = _DATEADD_DAYS[part]
        count = _wrap(amount, 5) if days == 1 else f"{days} * {_wrap(amount, 6)}"
        return _Dax(f"{_wrap(date, 5)} + {count}", "date", 5)
    raise UntranslatableFormulaError(f"DATEADD of {part!r} is not translated")


def _datediff(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (3, 4))
    part = _date_part(node)
    if part not in _DATEDIFF_INTERVALS:
        raise UntranslatableFormulaError(f"DATEDIFF in {part!r} is not translated")
    start, end = self._emit(node.args[1]).text, self._emit(node.args[2]).text
    return _Dax(f"DATEDIFF({start}, {end}, {_DATEDIFF_INTERVALS[part]})", "number")


def _date(self: DaxTranslator, node: Call) -> _Dax:
    _check_arity(node, (1,))
    value = self._args(node)[0]
    if value.kind == "string":
        return _Dax(f"DATEVALUE({value.text})", "date")
    text = value.text
    return _Dax(f"DATE(YEAR({text}), MONTH({text}), DAY({text}))", "date")


_SPECIAL_FUNCTIONS: dict[str, Callable[[DaxTranslator, Call], _Dax]] = {
    "ROUND": _round,
    "CEILING": _significance("CEILING"),
    "FLOOR": _significance("FLOOR"),
    "LOG": _log,
    "ZN": _zn,
    "IIF": _iif,
    "STR": _str,
    "INT": _int,
    "FLOAT": _float,
    "MID": _mid,
    "CONTAINS": _contains,
    "STARTSWITH": _starts_or_ends("LEFT"),
    "ENDSWITH": _starts_or_ends("RIGHT"),
    "FIND": _find,
    "SPACE": _space,
    "SQUARE": _square,
    "ISOWEEKDAY": _iso_weekday,
    "ISOWEEK": _iso_week,
    "DATEPART": _datepart,
    "DATENAME": _datename,
    "DATETRUNC": _datetrunc,
    "DATEADD": _dateadd,
    "DATEDIFF": _datediff,
    "DATE": _date,
}
