"""The one filter language, for `where:` in pipelines and `amela filter`: small, safe, no eval.

    duration >= 0.5 and speech_ratio > 0.1
    not (lang in ["de", "fr"]) or has(text)
    dnsmos_ovrl >= 3.0 and clipping_ratio < 0.001
    len(text) > 0 and duration - offset < 30

Names are record fields (`field("odd-name")` for any other key); literals are numbers, strings, true/false/null
(or Python's True/False/None) and lists. Operators: comparisons (chains too), `in` / `not in`, `and` / `or` / `not`,
+ - * /, parentheses. Functions: has(field) (the field exists and is not null), len(x), abs(x), field("name").
The text is parsed with Python's grammar into a syntax tree and only the nodes above are accepted; it is compiled
to closures once, so nothing is ever evaluated as code.

A record is dropped when the expression is false, or when it cannot be evaluated on that record (a missing field, a
string compared with a number): the reason names which, e.g. `speech_ratio > 0.1 is false (speech_ratio=0.05)`.
For a top-level `and`, the reason names the first clause that failed.
"""
from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
            ast.NotIn: lambda a, b: a not in b}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_MISSING = object()


class _Undefined(Exception):
    """The expression cannot be evaluated on this record (the message says why)."""


Evaluator = Callable[[dict], object]


def _field(name: str) -> Evaluator:
    def get(record: dict):
        value = record.get(name, _MISSING)
        if value is _MISSING:
            raise _Undefined(f"missing field {name!r}")
        return value
    return get


def _compile(node: ast.AST, text: str) -> tuple[Evaluator, set[str]]:
    """(evaluator, field names it reads) for one node; anything outside the language is a ConfigError."""
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise _error(node, text, f"unsupported literal {node.value!r}")
        value = node.value
        return (lambda r: value), set()
    if isinstance(node, ast.Name):
        if node.id in _LITERAL_NAMES:
            value = _LITERAL_NAMES[node.id]
            return (lambda r: value), set()
        return _field(node.id), {node.id}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_compile(e, text) for e in node.elts]
        return (lambda r: [f(r) for f, _ in items]), set().union(*(n for _, n in items)) if items else set()
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, text) for v in node.values]
        names = set().union(*(n for _, n in parts))
        if isinstance(node.op, ast.And):
            return (lambda r: all(_truth(f(r)) for f, _ in parts)), names
        return (lambda r: any(_truth(f(r)) for f, _ in parts)), names
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        f, names = _compile(node.operand, text)
        if isinstance(node.op, ast.Not):
            return (lambda r: not _truth(f(r))), names
        return (lambda r: -_number(f(r))), names
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        op = _ARITH[type(node.op)]
        (fa, na), (fb, nb) = _compile(node.left, text), _compile(node.right, text)
        return (lambda r: _apply(op, _number(fa(r)), _number(fb(r)))), na | nb
    if isinstance(node, ast.Compare):
        first, names = _compile(node.left, text)
        rest = []
        for op_node, right in zip(node.ops, node.comparators):
            if type(op_node) not in _COMPARE:
                raise _error(node, text, "unsupported comparison")
            f, n = _compile(right, text)
            rest.append((_COMPARE[type(op_node)], f))
            names |= n

        def compare(r):
            left = first(r)
            for op, f in rest:
                right = f(r)
                if not _apply(op, left, right):
                    return False
                left = right
            return True
        return compare, names
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return _call(node, text)
    raise _error(node, text, f"{type(node).__name__} is not part of the filter language")


def _call(node: ast.Call, text: str) -> tuple[Evaluator, set[str]]:
    fn = node.func.id
    if fn in ("has", "field"):
        arg = node.args[0] if len(node.args) == 1 else None
        if isinstance(arg, ast.Name):
            name = arg.id
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            name = arg.value
        else:
            raise _error(node, text, f"{fn}() takes one field name")
        if fn == "field":
            return _field(name), {name}
        return (lambda r: r.get(name) is not None), {name}
    if fn in ("len", "abs") and len(node.args) == 1:
        f, names = _compile(node.args[0], text)
        impl = len if fn == "len" else abs
        return (lambda r: _apply(impl, f(r))), names
    raise _error(node, text, f"unknown function {fn}(); available: has(field), field(name), len(x), abs(x)")


def _apply(fn, *args):
    try:
        return fn(*args)
    except (TypeError, ZeroDivisionError) as exc:
        raise _Undefined(f"cannot evaluate ({exc})") from None


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Undefined(f"expected a number, got {value!r}")
    return value


def _truth(value) -> bool:
    if not isinstance(value, bool):
        raise _Undefined(f"expected true or false, got {value!r} (compare it: e.g. `x > 0`)")
    return value


def _error(node: ast.AST, text: str, message: str) -> ConfigError:
    col = getattr(node, "col_offset", None)
    where = f" at column {col + 1}" if col is not None else ""
    return ConfigError(f"filter {text!r}{where}: {message}")


@dataclass(frozen=True)
class Filter:
    """A compiled expression. `reason(record)` is None to keep the record, else why it is dropped."""

    text: str
    fields: frozenset[str]
    _clauses: tuple[tuple[str, Evaluator, frozenset[str]], ...]

    def reason(self, record: dict) -> str | None:
        for source, evaluate, names in self._clauses:
            try:
                ok = _truth(evaluate(record))
            except _Undefined as exc:
                return f"{source}: {exc}"
            if not ok:
                shown = ", ".join(f"{n}={record[n]!r}" for n in sorted(names) if n in record)
                return f"{source} is false" + (f" ({shown})" if shown else "")
        return None

    def keeps(self, record: dict) -> bool:
        return self.reason(record) is None


def compile_filter(text: str) -> Filter:
    """Parse and compile; a syntax error or anything outside the language is a ConfigError saying where."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("filter: empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"filter {text!r}: syntax error at column {exc.offset}: {exc.msg}") from None
    body = tree.body
    src = text.strip()
    # A top-level `and` is kept as clauses, so a dropped record names the clause that failed.
    nodes = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    clauses = []
    fields: set[str] = set()
    for node in nodes:
        evaluate, names = _compile(node, src)
        clauses.append((ast.get_source_segment(src, node) or src, evaluate, frozenset(names)))
        fields |= names
    return Filter(src, frozenset(fields), tuple(clauses))
