"""Read a Tableau workbook's datasources into a ``SemanticModel``.

Each leaf relation of a datasource (a database table, a sheet, a custom SQL
query) becomes a model table whose columns come from the connection's
metadata records. Calculated fields become measures when they aggregate and
calculated columns when they work row by row; parameters become measures of a
``Parameters`` table. Join clauses and object-model relationships become
relationships.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Iterator
from xml.etree.ElementTree import Element

from demo.tableau.dax import (
    AGGREGATIONS,
    DaxTranslator,
    FieldInfo,
    ValueKind,
    field_references,
    uses_aggregation,
)
from demo.tableau.errors import UntranslatableFormulaError
from demo.tableau.formula_parser import Node, parse_formula
from demo.tableau.model import (
    Calculation,
    Column,
    DataType,
    Relationship,
    SemanticModel,
    Table,
)
from demo.tableau.names import NameRegistry, clean_name, unbracket

# Tableau writes an element or attribute twice, as "_.fcp.<Feature>.true...x"
# and "_.fcp.<Feature>.false...x", when its form depends on a feature flag. Current
# Tableau versions read the "true" form.
_FEATURE_FLAG = re.compile(r"^_\.fcp\.[^.]+\.(true|false)\.\.\.(.+)$")
_QUALIFIED_FIELD = re.compile(r"^\[((?:[^\]]|\]\])*)\]\.\[((?:[^\]]|\]\])*)\]$")
_AGGREGATE_CALL = re.compile(r"\b(" + "|".join(AGGREGATIONS) + r")\s*\(", re.IGNORECASE)

_DATA_TYPES: dict[str, DataType] = {
    "string": "string",
    "integer": "int64",
    "real": "double",
    "boolean": "boolean",
    "date": "dateTime",
    "datetime": "dateTime",
}
_VALUE_KINDS: dict[str, ValueKind] = {
    "string": "string",
    "int64": "number",
    "double": "number",
    "decimal": "number",
    "boolean": "boolean",
    "dateTime": "date",
}
_SUMMARIZE_BY = {
    "sum": "sum",
    "avg": "average",
    "min": "min",
    "max": "max",
    "count": "count",
    "countd": "distinctCount",
}
# OLE DB type code of a currency column (DBTYPE_CY) in Tableau's metadata.
_CURRENCY_REMOTE_TYPE = "6"
_CONTAINER_RELATIONS = {"join", "collection"}
PARAMETERS_DATASOURCE = "Parameters"
PLACEHOLDER_EXPRESSION = "BLANK()"


def apply_feature_flags(root: Element) -> None:
    """Keep the ``true`` form of feature-flagged elements and attributes."""
    for element in list(root.iter()):
        for child in list(element):
            match = (
                _FEATURE_FLAG.match(child.tag) if isinstance(child.tag, str) else None
            )
            if match and match[1] == "false":
                element.remove(child)
            elif match:
                child.tag = match[2]
        for key in [k for k in element.attrib if _FEATURE_FLAG.match(k)]:
            match = _FEATURE_FLAG.match(key)
            value = element.attrib.pop(key)
            if match and match[1] == "true":
                element.attrib[match[2]] = value


@dataclasses.dataclass
class _SourceColumn:
    relation: str
    remote_name: str
    local_name: str
    datatype: str
    remote_type: str = ""
    aggregation: str = ""


@dataclasses.dataclass
class _PendingCalculation:
    element: Element
    tableau_name: str
    caption: str
    formula: str
    node: Node | None
    parse_error: str
    home: str = ""
    calculation: Calculation | None = None


@dataclasses.dataclass
class Datasource:
    """One ``<datasource>`` of the workbook and what it became in the model."""

    element: Element
    name: str
    caption: str
    relations: list[Element]
    calculations: list[Element]
    tables: list[Table] = dataclasses.field(default_factory=list)
    fields: dict[str, FieldInfo] = dataclasses.field(default_factory=dict)
    relation_tables: dict[str, str] = dataclasses.field(default_factory=dict)
    remote_columns: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)

    @property
    def is_parameters(self) -> bool:
        return self.name == PARAMETERS_DATASOURCE

    def lookup(self, name: str) -> FieldInfo | None:
        found = self.fields.get(name)
        if found is None:
            folded = name.casefold()
            found = next(
                (info for key, info in self.fields.items() if key.casefold() == folded),
                None,
            )
        return found


def read_datasource(element: Element) -> Datasource:
    """Return the datasource's leaf relations and calculated fields, unconverted."""
    name = element.get("name", "")
    caption = element.get("caption") or name
    connection = element.find("connection")
    relations: list[Element] = []
    if connection is not None:
        for relation in connection.findall("relation"):
            relations.extend(_leaf_relations(relation))
    if not relations:
        for relation in element.findall(
            "object-graph/objects/object/properties/relation"
        ):
            relations.extend(_leaf_relations(relation))
    unique: dict[str, Element] = {}
    for relation in relations:
        unique.setdefault(relation.get("name", ""), relation)
    calculations = [
        column
        for column in element.findall("column")
        if column.find("calculation") is not None
    ]
    return Datasource(element, name, caption, list(unique.values()), calculations)


def _leaf_relations(relation: Element) -> list[Element]:
    if relation.get("type") in _CONTAINER_RELATIONS:
        found = []
        for child in relation.findall("relation"):
            found.extend(_leaf_relations(child))
        return found
    return [relation]


class WorkbookConverter:
    """Build a ``SemanticModel`` from a workbook, one datasource at a time.

    The job calls ``add_tables`` and ``add_calculations`` for each of
    ``datasources`` in order (the parameters come first, so references to them
    resolve), then ``add_relationships`` once.
    """

    def __init__(self, root: Element, model_name: str) -> None:
        apply_feature_flags(root)
        self.model = SemanticModel(model_name)
        sources = [read_datasource(e) for e in root.findall("datasources/datasource")]
        self.datasources = sorted(sources, key=lambda s: not s.is_parameters)
        self._table_names = NameRegistry()
        self._measure_names = NameRegistry()
        self._column_names: dict[str, NameRegistry] = {}

    def datasource(self, name: str) -> Datasource | None:
        """Return the datasource with this internal name or caption."""
        for source in self.datasources:
            if name in (source.name, source.caption):
                return source
        return None

    def warn(self, message: str) -> str:
        self.model.warnings.append(message)
        return message

    def add_tables(self, source: Datasource) -> Iterator[Table]:
        """Create the tables of ``source``, yielding each when its columns are in."""
        if source.is_parameters:
            yield self._new_table(source, PARAMETERS_DATASOURCE, is_parameters=True)
            return
        by_relation = self._source_columns(source)
        if not source.relations:
            table = self._new_table(source, source.caption)
            self._add_columns(source, table, "", by_relation.get("", []))
            yield table
            return
        for relation in source.relations:
            relation_name = relation.get("name", "")
            table = self._new_table(source, relation_name or source.caption)
            table.connection_class = self._connection_class(source, relation)
            table.source_description = relation.get("table", "") or relation_name
            if relation.get("type") == "text":
                table.custom_sql = relation.text or ""
            source.relation_tables[relation_name] = table.name
            self._add_columns(source, table, relation_name, by_relation[relation_name])
            yield table

    def _new_table(
        self, source: Datasource, name: str, *, is_parameters: bool = False
    ) -> Table:
        table_name = self._table_names.claim(clean_name(name, "Table"))
        table = Table(table_name, source.caption, is_parameter_table=is_parameters)
        registry = self._column_names[table_name] = NameRegistry()
        if is_parameters or not source.relations:
            table.placeholder_column = registry.claim(table.placeholder_column)
        source.tables.append(table)
        self.model.tables.append(table)
        return table

    def _connection_class(self, source: Datasource, relation: Element) -> str:
        wanted = relation.get("connection")
        for named in source.element.iterfind(
            "connection/named-connections/named-connection"
        ):
            if named.get("name") == wanted:
                inner = named.find("connection")
                return inner.get("class", "") if inner is not None else ""
        connection = source.element.find("connection")
        return connection.get("class", "") if connection is not None else ""

    def _source_columns(self, source: Datasource) -> dict[str, list[_SourceColumn]]:
        relation_names = [r.get("name", "") for r in source.relations]
        by_relation: dict[str, list[_SourceColumn]] = collections.defaultdict(list)
        for record in source.element.iterfind(
            "connection/metadata-records/metadata-record"
        ):
            if record.get("class") != "column":
                continue
            parent = unbracket(record.findtext("parent-name", ""))
            if parent not in relation_names and len(relation_names) == 1:
                parent = relation_names[0]
            if parent not in relation_names:
                continue
            by_relation[parent].append(_column_from_record(record, parent))
        for relation in source.relations:
            name = relation.get("name", "")
            if not by_relation[name]:
                by_relation[name] = [
                    _SourceColumn(
                        name,
                        c.get("name", ""),
                        f"[{c.get('name', '')}]",
                        c.get("datatype", ""),
                    )
                    for c in relation.findall("columns/column")
                ]
        self._add_declared_columns(source, by_relation, relation_names)
        return by_relation

    def _add_declared_columns(
        self,
        source: Datasource,
        by_relation: dict[str, list[_SourceColumn]],
        relation_names: list[str],
    ) -> None:
        # A datasource column with no metadata record (an older workbook, or a
        # source Tableau could not describe) still belongs to the model.
        known = {c.local_name for columns in by_relation.values() for c in columns}
        target = relation_names[0] if relation_names else ""
        for declared in source.element.findall("column"):
            name = declared.get("name", "")
            datatype = declared.get("datatype", "")
            if (
                name in known
                or datatype == "table"
                or declared.find("calculation") is not None
            ):
                continue
            if name.startswith("[__tableau_internal"):
                continue
            by_relation[target].append(
                _SourceColumn(target, unbracket(name), name, datatype)
            )

    def _add_columns(
        self,
        source: Datasource,
        table: Table,
        relation: str,
        columns: list[_SourceColumn],
    ) -> None:
        declared = {c.get("name", ""): c for c in source.element.findall("column")}
        registry = self._column_names[table.name]
        for found in columns:
            element = declared.get(found.local_name)
            caption = element.get("caption") if element is not None else None
            wanted = caption or unbracket(found.local_name) or found.remote_name
            column = _make_column(found, element)
            column.name = registry.claim(
                clean_name(wanted, "Column"), self._measure_names
            )
            table.columns.append(column)
            info = FieldInfo(
                "column", column.name, table.name, _VALUE_KINDS[column.data_type]
            )
            source.fields[unbracket(found.local_name)] = info
            source.fields.setdefault(column.name, info)
            source.remote_columns[(relation, found.remote_name)] = column.name

    def planned_tables(self, source: Datasource) -> int:
        """Return how many tables ``add_tables`` will create for ``source``."""
        return 1 if source.is_parameters else max(1, len(source.relations))

    def add_calculations(self, source: Datasource) -> Iterator[Calculation]:
        """Translate the calculated fields of ``source``, yielding each one.

        Call it after ``add_tables`` for the same datasource.
        """
        pending = [_pending(element) for element in source.calculations]
        if not pending:
            return
        resolver = _Resolver(self, source)
        classifier = _Classifier(source, pending)
        for item in pending:
            self._place(source, item, classifier.is_measure(item))
        for item in pending:
            yield self._translate(source, item, resolver)

    def _place(
        self, source: Datasource, item: _PendingCalculation, is_measure: bool
    ) -> None:
        if source.is_parameters:
            home = source.tables[0].name
        else:
            home = self._home_table(source, item)
        item.home = home
        wanted = clean_name(item.caption, "Calculation")
        if is_measure or source.is_parameters:
            name = self._measure_names.claim(wanted, self._column_names[home])
        else:
            name = self._column_names[home].claim(wanted, self._measure_names)
        data_type = _DATA_TYPES.get(item.element.get("datatype", ""), "string")
        item.calculation = Calculation(
            name=name,
            tableau_name=item.tableau_name,
            formula=item.formula,
            datasource=source.caption,
            is_measure=is_measure or source.is_parameters,
            is_parameter=source.is_parameters,
            data_type=data_type,
        )
        kind = "measure" if item.calculation.is_measure else "column"
        table = None if kind == "measure" else home
        info = FieldInfo(kind, name, table, _VALUE_KINDS[data_type])
        source.fields[item.tableau_name] = info
        source.fields.setdefault(item.caption, info)

    def _home_table(self, source: Datasource, item: _PendingCalculation) -> str:
        for parts in field_references(item.node) if item.node is not None else []:
            info = source.lookup(parts[-1]) if len(parts) == 1 else None
            if info is not None and info.kind == "column" and info.table:
                return info.table
        return source.tables[0].name

    def _translate(
        self, source: Datasource, item: _PendingCalculation, resolver: _Resolver
    ) -> Calculation:
        calculation = item.calculation
        assert calculation is not None  # set by _place
        table = self.model.table(item.home)
        try:
            if item.node is None:
                raise UntranslatableFormulaError(item.parse_error)
            translator = DaxTranslator(
                resolver, item.home, measure=calculation.is_measure
            )
            calculation.expression = translator.translate(item.node)
        except UntranslatableFormulaError as exc:
            calculation.translated = False
            calculation.reason = str(exc)
            calculation.expression = PLACEHOLDER_EXPRESSION
            self.warn(
                f"calculated field {item.caption!r} of datasource {source.caption!r} "
                f"was not translated ({exc}); it is written as "
                f"{PLACEHOLDER_EXPRESSION} with its Tableau formula kept"
            )
        if source.is_parameters:
            calculation.description = _parameter_domain(item.element)
        if calculation.is_measure:
            table.measures.append(calculation)
        else:
            table.calculated_columns.append(calculation)
        return calculation

    def add_relationships(self) -> list[Relationship]:
        """Create relationships from join clauses and object-model relationships."""
        for source in self.datasources:
            for join in source.element.iterfind("connection//relation[@type='join']"):
                for clause in join.findall("clause"):
                    expression = clause.find("expression")
                    if expression is not None:
                        self._join_relationship(source, expression)
            for link in source.element.iterfind(
                "object-graph/relationships/relationship"
            ):
                self._object_relationship(source, link)
        return self.model.relationships

    def _join_relationship(self, source: Datasource, expression: Element) -> None:
        equalities = _equalities(expression)
        if not equalities:
            self.warn(
                f"a join in datasource {source.caption!r} does not compare columns "
                f"for equality (operator {expression.get('op')!r}); no relationship "
                "was created"
            )
            return
        if len(equalities) > 1:
            self.warn(
                f"a join in datasource {source.caption!r} uses {len(equalities)} key "
                "columns; a Power BI relationship has one, so only the first is used"
            )
        # NOTE: the left side of the join is taken as the many side; Tableau's
        # join does not say which side holds unique keys.
        ends = self._ends(source, equalities[0])
        if ends is not None:
            first, second = ends
            self._add_relationship(Relationship(*first, *second, origin="join"))

    def _ends(
        self, source: Datasource, sides: list[Element]
    ) -> tuple[tuple[str, str], tuple[str, str]] | None:
        first = self._join_end(source, sides[0].get("op", ""))
        second = self._join_end(source, sides[1].get("op", ""))
        if first is None or second is None:
            return None
        return first, second

    def _join_end(self, source: Datasource, reference: str) -> tuple[str, str] | None:
        match = _QUALIFIED_FIELD.match(reference)
        if match:
            relation = match[1].replace("]]", "]")
            remote = match[2].replace("]]", "]")
            table = source.relation_tables.get(relation)
            column = source.remote_columns.get((relation, remote))
            if table and column:
                return table, column
        info = source.lookup(unbracket(reference))
        if info is not None and info.kind == "column" and info.table:
            return info.table, info.name
        self.warn(
            f"the join column {reference!r} in datasource {source.caption!r} is not "
            "a column of the model; the join was not turned into a relationship"
        )
        return None

    def _object_relationship(self, source: Datasource, link: Element) -> None:
        expression = link.find("expression")
        equalities = _equalities(expression) if expression is not None else []
        if not equalities:
            self.warn(
                f"a relationship in datasource {source.caption!r} has no column "
                "equality; it was skipped"
            )
            return
        ends = self._ends(source, equalities[0])
        if ends is None:
            return
        first, second = ends
        first_point = link.find("first-end-point")
        if first_point is not None and first_point.get("unique-key") == "true":
            first, second = second, first
        self._add_relationship(Relationship(*first, *second, origin="relationship"))

    def _add_relationship(self, relationship: Relationship) -> None:
        new_tables = {relationship.from_table, relationship.to_table}
        if len(new_tables) == 1:
            self.warn(
                f"the join of {relationship.from_table!r} with itself cannot be a "
                "relationship; it was skipped"
            )
            return
        for existing in self.model.relationships:
            same_columns = {
                (existing.from_table, existing.from_column),
                (existing.to_table, existing.to_column),
            } == {
                (relationship.from_table, relationship.from_column),
                (relationship.to_table, relationship.to_column),
            }
            if same_columns:
                return
            if {existing.from_table, existing.to_table} == new_tables:
                relationship.is_active = False
        if not relationship.is_active:
            self.warn(
                f"{relationship.from_table!r} and {relationship.to_table!r} are "
                "already related; the relationship on "
                f"{relationship.from_column!r} is written as inactive"
            )
        self.model.relationships.append(relationship)


class _Resolver:
    """Resolve the field references of one datasource's formulas."""

    def __init__(self, converter: WorkbookConverter, source: Datasource) -> None:
        self._converter = converter
        self._source = source

    def resolve(self, parts: tuple[str, ...]) -> FieldInfo:
        source: Datasource | None = self._source
        if len(parts) == 2:
            source = self._converter.datasource(parts[0])
        elif len(parts) != 1:
            source = None
        info = source.lookup(parts[-1]) if source is not None else None
        if info is None:
            shown = ".".join(f"[{part}]" for part in parts)
            raise UntranslatableFormulaError(
                f"the field {shown} is not a column, calculation or parameter of "
                f"datasource {self._source.caption!r}"
            )
        return info


class _Classifier:
    """Decide which calculated fields are measures, following references."""

    def __init__(self, source: Datasource, pending: list[_PendingCalculation]) -> None:
        self._by_name = {item.tableau_name: item for item in pending}
        self._by_name.update({item.caption: item for item in pending if item.caption})
        self._source = source
        self._decided: dict[str, bool] = {}
        self._visiting: set[str] = set()

    def is_measure(self, item: _PendingCalculation) -> bool:
        key = item.tableau_name
        if key in self._decided:
            return self._decided[key]
        if key in self._visiting:
            return False
        self._visiting.add(key)
        if item.node is not None:
            result = uses_aggregation(item.node, self._references_measure)
        else:
            result = bool(_AGGREGATE_CALL.search(item.formula))
        self._visiting.discard(key)
        self._decided[key] = result
        return result

    def _references_measure(self, parts: tuple[str, ...]) -> bool:
        if len(parts) != 1:
            return False
        item = self._by_name.get(parts[0])
        return item is not None and self.is_measure(item)


def _pending(element: Element) -> _PendingCalculation:
    calculation = element.find("calculation")
    assert calculation is not None  # read_datasource keeps only calculated fields
    tableau_name = unbracket(element.get("name", ""))
    caption = element.get("caption") or tableau_name
    formula = calculation.get("formula")
    if formula is None:
        kind = calculation.get("class", "unknown")
        return _PendingCalculation(
            element,
            tableau_name,
            caption,
            "",
            None,
            f"Tableau {kind!r} calculations have no formula to translate",
        )
    try:
        node: Node | None = parse_formula(formula)
        error = ""
    except UntranslatableFormulaError as exc:
        node, error = None, f"the formula could not be parsed: {exc}"
    return _PendingCalculation(element, tableau_name, caption, formula, node, error)


def _column_from_record(record: Element, relation: str) -> _SourceColumn:
    return _SourceColumn(
        relation=relation,
        remote_name=record.findtext("remote-name", ""),
        local_name=record.findtext("local-name", ""),
        datatype=record.findtext("local-type", ""),
        remote_type=record.findtext("remote-type", ""),
        aggregation=record.findtext("aggregation", "").lower(),
    )


def _make_column(found: _SourceColumn, declared: Element | None) -> Column:
    datatype = found.datatype
    if declared is not None and declared.get("datatype"):
        datatype = declared.get("datatype", datatype)
    data_type: DataType = _DATA_TYPES.get(datatype, "string")
    if data_type == "double" and found.remote_type == _CURRENCY_REMOTE_TYPE:
        data_type = "decimal"
    role = declared.get("role") if declared is not None else None
    summarize_by = "none"
    if _VALUE_KINDS[data_type] == "number" and role != "dimension":
        summarize_by = _SUMMARIZE_BY.get(found.aggregation, "sum")
    hidden = declared is not None and declared.get("hidden") == "true"
    return Column(
        name="",
        data_type=data_type,
        source_column=found.remote_name or unbracket(found.local_name),
        summarize_by=summarize_by,
        is_date_only=datatype == "date",
        is_hidden=hidden,
        tableau_name=unbracket(found.local_name),
    )


def _equalities(expression: Element) -> list[list[Element]]:
    """Return the column pairs an ``=`` or an ``AND`` of ``=`` compares."""
    candidates = [expression] if expression.get("op") == "=" else []
    if expression.get("op", "").upper() in ("AND", "&&"):
        candidates = [e for e in expression.findall("expression") if e.get("op") == "="]
    pairs = []
    for candidate in candidates:
        sides = candidate.findall("expression")
        if len(sides) == 2:
            pairs.append(sides)
    return pairs


def _parameter_domain(element: Element) -> str:
    domain = element.get("param-domain-type", "")
    range_element = element.find("range")
    if domain == "range" and range_element is not None:
        bounds = {k: range_element.get(k) for k in ("min", "max", "granularity")}
        shown = json.dumps({k: v for k, v in bounds.items() if v is not None})
        return f"Tableau parameter with a range of values {shown}"
    members = [m.get("value", "") for m in element.findall("members/member")]
    if members:
        return f"Tableau parameter with the allowed values {json.dumps(members)}"
    return "Tableau parameter"
