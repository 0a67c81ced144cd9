"""Parse Tableau calculation formulas into a small syntax tree.

The grammar covers the syntax of calculated fields. Literals are numbers,
``'text'`` and ``"text"``, ``#2024-01-31#`` dates and TRUE/FALSE/NULL. Field
references are ``[Sales]``, ``[Parameters].[Parameter 1]`` or a bare ``Sales``.
Then come function calls, ``IF … THEN … ELSEIF … ELSE … END``,
``CASE … WHEN … END``, level of detail expressions such as
``{ FIXED [Region] : SUM([Sales]) }``, the arithmetic, comparison and logical
operators, and ``//`` comments.
"""

from __future__ import annotations

import dataclasses
import re

from demo.tableau.errors import UntranslatableFormulaError


@dataclasses.dataclass(frozen=True)
class Number:
    text: str


@dataclasses.dataclass(frozen=True)
class String:
    value: str


@dataclasses.dataclass(frozen=True)
class DateLiteral:
    text: str


@dataclasses.dataclass(frozen=True)
class Constant:
    """``TRUE``, ``FALSE`` or ``NULL``."""

    name: str


@dataclasses.dataclass(frozen=True)
class Field:
    #: The bracketed parts: ``("Parameters", "Parameter 1")`` or ``("Sales",)``.
    parts: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Call:
    #: Upper-case function name.
    name: str
    args: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclasses.dataclass(frozen=True)
class Binary:
    #: Normalised operator: ``+ - * / % ^ = <> < > <= >= AND OR``.
    op: str
    left: Node
    right: Node


@dataclasses.dataclass(frozen=True)
class If:
    branches: tuple[tuple[Node, Node], ...]
    otherwise: Node | None


@dataclasses.dataclass(frozen=True)
class Case:
    subject: Node
    whens: tuple[tuple[Node, Node], ...]
    otherwise: Node | None


@dataclasses.dataclass(frozen=True)
class LevelOfDetail:
    #: ``FIXED``, ``INCLUDE``, ``EXCLUDE``, or ``""`` for ``{ SUM([x]) }``.
    kind: str
    dimensions: tuple[Node, ...]
    expression: Node


Node = (
    Number
    | String
    | DateLiteral
    | Constant
    | Field
    | Call
    | Unary
    | Binary
    | If
    | Case
    | LevelOfDetail
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
    | (?P<field>\[(?:[^\]]|\]\])*\])
    | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<date>\#[^#\n]*\#)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><=|>=|<>|!=|==|&&|\|\||[-+*/%^=<>(),{}:.])
    """,
    re.VERBOSE | re.DOTALL,
)

_KEYWORDS = {"IF", "THEN", "ELSEIF", "ELSE", "END", "CASE", "WHEN", "AND", "OR", "NOT"}
_COMPARISONS = {"=": "=", "==": "=", "<>": "<>", "!=": "<>", "<": "<", ">": ">"}
_COMPARISONS |= {"<=": "<=", ">=": ">="}


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def tokenize(formula: str) -> list[_Token]:
    """Split a formula into tokens, dropping whitespace and comments."""
    tokens = []
    position = 0
    while position < len(formula):
        match = _TOKEN.match(formula, position)
        if match is None:
            raise UntranslatableFormulaError(
                f"unexpected character {formula[position]!r} at offset {position}"
            )
        kind = match.lastgroup or ""
        if kind != "space":
            text = match.group()
            if kind == "name" and text.upper() in _KEYWORDS:
                kind, text = "keyword", text.upper()
            tokens.append(_Token(kind, text, position))
        position = match.end()
    tokens.append(_Token("end", "", len(formula)))
    return tokens


#: Deepest syntax tree translated; the translator and its helpers recurse, so a
#: deeper formula is kept untranslated instead of exhausting Python's stack.
MAX_DEPTH = 100


def parse_formula(formula: str) -> Node:
    """Return the syntax tree of a Tableau formula.

    Raises ``UntranslatableFormulaError`` for text outside the grammar.
    """
    parser = _Parser(tokenize(formula))
    try:
        node = parser.expression()
    except RecursionError as exc:
        raise UntranslatableFormulaError(
            f"the formula nests deeper than {MAX_DEPTH} levels"
        ) from exc
    parser.expect("end")
    if _depth(node) > MAX_DEPTH:
        raise UntranslatableFormulaError(
            f"the formula nests deeper than {MAX_DEPTH} levels"
        )
    return node


def _depth(root: Node) -> int:
    """Return the depth of the syntax tree, walked without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for field in dataclasses.fields(node):  # type: ignore[arg-type]
            stack.extend(
                (child, depth + 1) for child in _children(getattr(node, field.name))
            )
    return deepest


def _children(value: object) -> list[object]:
    if dataclasses.is_dataclass(value):
        return [value]
    if isinstance(value, tuple):
        return [child for item in value for child in _children(item)]
    return []


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def peek(self) -> _Token:
        return self._tokens[self._index]

    def advance(self) -> _Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.peek()
        if token.kind == kind and (text is None or token.text == text):
            return self.advance()
        return None

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.accept(kind, text)
        if token is None:
            found = self.peek()
            wanted = text or kind
            shown = found.text or "the end of the formula"
            raise UntranslatableFormulaError(
                f"expected {wanted!r} at offset {found.position}, found {shown!r}"
            )
        return token

    def expression(self) -> Node:
        return self.logical_or()

    def logical_or(self) -> Node:
        node = self.logical_and()
        while self.accept("keyword", "OR") or self.accept("op", "||"):
            node = Binary("OR", node, self.logical_and())
        return node

    def logical_and(self) -> Node:
        node = self.logical_not()
        while self.accept("keyword", "AND") or self.accept("op", "&&"):
            node = Binary("AND", node, self.logical_not())
        return node

    def logical_not(self) -> Node:
        if self.accept("keyword", "NOT"):
            return Unary("NOT", self.logical_not())
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        token = self.peek()
        if token.kind == "op" and token.text in _COMPARISONS:
            self.advance()
            node = Binary(_COMPARISONS[token.text], node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while (token := self.peek()).kind == "op" and token.text in "+-":
            self.advance()
            node = Binary(token.text, node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while (token := self.peek()).kind == "op" and token.text in ("*", "/", "%"):
            self.advance()
            node = Binary(token.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("op", "-"):
            return Unary("-", self.unary())
        if self.accept("op", "+"):
            return self.unary()
        node = self.primary()
        if self.accept("op", "^"):
            return Binary("^", node, self.unary())
        return node

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            return Number(token.text)
        if token.kind == "string":
            quote = token.text[0]
            return String(token.text[1:-1].replace(quote * 2, quote))
        if token.kind == "date":
            return DateLiteral(token.text[1:-1].strip())
        if token.kind == "field":
            return self.field(token)
        if token.kind == "name":
            return self.name(token)
        if token.kind == "keyword" and token.text == "IF":
            return self.if_expression()
        if token.kind == "keyword" and token.text == "CASE":
            return self.case_expression()
        if token.kind == "op" and token.text == "(":
            node = self.expression()
            self.expect("op", ")")
            return node
        if token.kind == "op" and token.text == "{":
            return self.level_of_detail()
        shown = token.text or "the end of the formula"
        raise UntranslatableFormulaError(
            f"unexpected {shown!r} at offset {token.position}"
        )

    def field(self, token: _Token) -> Field:
        parts = [_unbracket(token.text)]
        while self.peek().kind == "op" and self.peek().text == ".":
            self.advance()
            parts.append(_unbracket(self.expect("field").text))
        return Field(tuple(parts))

    def name(self, token: _Token) -> Node:
        upper = token.text.upper()
        if upper in ("TRUE", "FALSE", "NULL"):
            return Constant(upper)
        if not self.accept("op", "("):
            return Field((token.text,))
        args: list[Node] = []
        if not self.accept("op", ")"):
            args.append(self.expression())
            while self.accept("op", ","):
                args.append(self.expression())
            self.expect("op", ")")
        return Call(upper, tuple(args))

    def if_expression(self) -> If:
        branches = [(self.expression(), self._then())]
        while self.accept("keyword", "ELSEIF"):
            branches.append((self.expression(), self._then()))
        otherwise = self.expression() if self.accept("keyword", "ELSE") else None
        self.expect("keyword", "END")
        return If(tuple(branches), otherwise)

    def _then(self) -> Node:
        self.expect("keyword", "THEN")
        return self.expression()

    def case_expression(self) -> Case:
        subject = self.expression()
        whens = []
        while self.accept("keyword", "WHEN"):
            whens.append((self.expression(), self._then()))
        if not whens:
            self.expect("keyword", "WHEN")
        otherwise = self.expression() if self.accept("keyword", "ELSE") else None
        self.expect("keyword", "END")
        return Case(subject, tuple(whens), otherwise)

    def level_of_detail(self) -> LevelOfDetail:
        token = self.peek()
        kind = ""
        dimensions: list[Node] = []
        if token.kind == "name" and token.text.upper() in (
            "FIXED",
            "INCLUDE",
            "EXCLUDE",
        ):
            self.advance()
            kind = token.text.upper()
            if not self.accept("op", ":"):
                dimensions.append(self.expression())
                while self.accept("op", ","):
                    dimensions.append(self.expression())
                self.expect("op", ":")
        expression = self.expression()
        self.expect("op", "}")
        return LevelOfDetail(kind, tuple(dimensions), expression)


def _unbracket(text: str) -> str:
    return text[1:-1].replace("]]", "]")


def iter_nodes(node: Node) -> list[Node]:
    """Return ``node`` and every node below it, parents first."""
    found = [node]
    for child in children(node):
        found.extend(iter_nodes(child))
    return found


def children(node: Node) -> tuple[Node, ...]:
    """Return the nodes directly below ``node``."""
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, If):
        pairs = tuple(part for branch in node.branches for part in branch)
        return pairs + ((node.otherwise,) if node.otherwise is not None else ())
    if isinstance(node, Case):
        pairs = tuple(part for when in node.whens for part in when)
        tail = (node.otherwise,) if node.otherwise is not None else ()
        return (node.subject, *pairs, *tail)
    if isinstance(node, LevelOfDetail):
        return (*node.dimensions, node.expression)
    return ()
