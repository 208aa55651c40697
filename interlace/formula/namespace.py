"""Where formula expressions look names up, and the checks they pass before they run.

R formulas are code, and so are ours: ``I(x ** 2)``, ``log(t)``, ``scale(age)``
are Python expressions that formulaic evaluates. They run in a restricted
namespace, looked up in this order:

1. the data's columns;
2. interlace's formula functions: ``np``/``numpy``, formulaic's transforms
   (``log``, ``exp``, ``C``, ``poly``, ``bs``, ...), R-style ``scale``/``center``
   (missing values ignored, as R's ``scale`` does), glmmTMB's ``numFactor``, and the harmless built-ins
   ``abs``, ``min``, ``max``, ``round``, ``pow``, ``sum``, ``float``, ``int``, ``bool``;
3. the caller's variables (R's ``environment(formula)``): a constant ``k`` in
   ``I(x - k)`` or a function of the user's; modules, classes and built-in
   functions of the caller's scope are not taken.

Python's built-ins are not in the namespace, and before anything runs every
expression is parsed and refused (ValueError naming it) when it reads an unknown
name (``__import__``, ``open``, ``eval``, ``getattr``), a private or dunder
attribute (``x.__class__``), an attribute that reads or writes files or runs
code (``np.load``, ``x.to_pickle``, ``np.ctypeslib``), or uses lambda, a
comprehension or ``:=``. This is a guard against accidents and the obvious
escapes, not a sandbox: a formula string from an untrusted source is still code.

Also here: R's ``^`` (a power inside function calls, :func:`r_powers`) and the
materializer that codes ordered factors with ``contr.poly`` and treats pandas
``string``/pyarrow string columns as categorical (:class:`RMaterializer`).

Example
-------
>>> r_powers("y ~ (a + b)^2 + I(x^2) + offset(log(t^2))")
'y ~ (a + b)^2 + I(x**2) + offset(log(t**2))'
>>> check_expression("I(__import__('os').getcwd())", {"x"}, FormulaEnv(), "fixed-effects formula")
Traceback (most recent call last):
...
ValueError: fixed-effects formula: I(__import__('os').getcwd()) uses '__import__', which formulas do not allow
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FormulaEnv",
    "RMaterializer",
    "as_env",
    "caller_variables",
    "check_expression",
    "check_formula",
    "r_powers",
    "scale",
    "center",
    "stateful_calls",
]


# ----------------------------------------------------------------------------- R's ^


def _scan(text: str):
    """Yield (index, char, inside) for characters outside quotes and backticks;
    ``inside`` is True when an enclosing bracket is a call's parenthesis, a
    subscript or formulaic's ``{...}`` (where the text is Python, not formula)."""
    stack: list[bool] = []
    quote: str | None = None
    prev = ""  # last non-space character outside quotes
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
                prev = ch
            continue
        if ch in "'\"`":
            quote = ch
            continue
        inside = any(stack)
        if ch == "(":
            # a call: the parenthesis follows a name, a closing bracket or a quote (`f`(x))
            stack.append(bool(prev) and (prev.isalnum() or prev in "_.)]`") or inside)
        elif ch in "[{":
            stack.append(True)
        elif ch in ")]}" and stack:
            stack.pop()
        yield i, ch, inside
        if not ch.isspace():
            prev = ch


def r_powers(text: str, everywhere: bool = False) -> str:
    """R's ``^`` as Python's ``**`` wherever R reads it as a power.

    In a formula, ``^`` is a power inside function calls (``I(x^2)``,
    ``offset(log(t^2))``, ``log(x^2)``); at the formula level it stays
    formulaic's crossing operator (``(a + b)^2``). With ``everywhere`` (a plain
    expression such as a response or ``weights=``) every ``^`` is a power.
    Quoted strings are left alone.

    >>> r_powers("I((Days - 4.5)^2) + (a + b)^2")
    'I((Days - 4.5)**2) + (a + b)^2'
    >>> r_powers("y^2", everywhere=True)
    'y**2'
    """
    if "^" not in text:
        return text
    out = list(text)
    for i, ch, inside in _scan(text):
        if ch == "^" and (inside or everywhere):
            out[i] = "**"
    return "".join(out)


# ----------------------------------------------------------------------------- R's scale()


def _stateful(fn):
    from formulaic.utils.stateful_transforms import stateful_transform

    return stateful_transform(fn)


@_stateful
def scale(data: Any, center: Any = True, scale: Any = True, ddof: float = 1, _state: dict = {}) -> np.ndarray:  # noqa: B006
    """R's ``scale()``: centre by the mean and divide by the standard deviation
    of the non-missing values (R's ``na.rm = TRUE``); with ``center=False`` the
    divisor is the root mean square, as in R. The state (centre, scale) is kept
    for new data. formulaic's own ``scale`` propagates NaN instead.

    >>> scale(np.array([1.0, 2.0, np.nan, 3.0]), _state={}).round(3).tolist()
    [-1.0, 0.0, nan, 1.0]
    """
    x = np.asarray(data, dtype=np.float64)
    if "ddof" not in _state:
        _state["ddof"] = ddof
    ddof = _state["ddof"]
    if "center" not in _state:
        if isinstance(center, bool):
            _state["center"] = np.nanmean(x, axis=0) if center and np.isfinite(x).any() else None
        else:
            _state["center"] = np.asarray(center, dtype=np.float64)
    if _state["center"] is not None:
        x = x - _state["center"]
    if "scale" not in _state:
        if isinstance(scale, bool):
            if scale:
                n_ok = np.sum(~np.isnan(x), axis=0)
                _state["scale"] = np.sqrt(np.nansum(x**2, axis=0) / (n_ok - ddof))
            else:
                _state["scale"] = None
        else:
            _state["scale"] = np.asarray(scale, dtype=np.float64)
    if _state["scale"] is not None:
        x = x / _state["scale"]
    return x


@_stateful
def center(data: Any, _state: dict = {}) -> np.ndarray:  # noqa: B006
    """``scale(x, scale=False)``: subtract the mean of the non-missing values."""
    return scale(data, scale=False, _state=_state)


# ----------------------------------------------------------------------------- the namespace

_SAFE_BUILTINS = {n: getattr(builtins, n) for n in ("abs", "min", "max", "round", "pow", "sum", "float", "int", "bool")}

# Attributes that read or write files, load code or evaluate strings.
_DENIED_ATTRS = frozenset({
    "ctypeslib", "ctypes", "f2py", "distutils", "testing", "lib", "load", "loads", "save", "savez",
    "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile", "tofile", "fromregex", "memmap",
    "DataSource", "dump", "dumps", "format", "format_map", "eval", "query", "pipe", "open",
})


class FormulaEnv:
    """The names formula expressions may use besides the data's columns.

    ``caller`` holds the values taken from the caller's scope (only those the
    formula uses), so the model can be rebuilt on new data and pickled; the
    fixed functions are not stored (a module does not pickle).

    >>> env = FormulaEnv({"k": 2.0})
    >>> sorted(n for n in ("k", "np", "scale", "open") if n in env.names())
    ['k', 'np', 'scale']
    """

    def __init__(self, caller: Mapping[str, Any] | None = None) -> None:
        self.caller: dict[str, Any] = dict(caller or {})

    @staticmethod
    def builtin() -> dict[str, Any]:
        """The fixed functions (numpy, R-style scale/center, harmless built-ins)."""
        from interlace.formula.numfactor import numFactor  # glmmTMB's coordinate factor

        return {"np": np, "numpy": np, "scale": scale, "center": center, "standardize": scale,
                "numFactor": numFactor, **_SAFE_BUILTINS}

    def mapping(self) -> dict[str, Any]:
        """The context handed to formulaic (its own transforms come after it)."""
        return {**self.caller, **self.builtin()}

    def names(self) -> set[str]:
        from formulaic.transforms import TRANSFORMS

        return set(self.builtin()) | set(TRANSFORMS) | set(self.caller)

    def __getstate__(self) -> dict:
        return {"caller": self.caller}

    def __setstate__(self, state: dict) -> None:
        self.caller = dict(state.get("caller", {}))

    def __repr__(self) -> str:
        return f"FormulaEnv(caller={sorted(self.caller)})"


def as_env(context: Any) -> FormulaEnv:
    """A :class:`FormulaEnv` from an env, a mapping of extra names or None."""
    if isinstance(context, FormulaEnv):
        return context
    if context is None:
        return FormulaEnv()
    if isinstance(context, Mapping):
        extra = {k: v for k, v in context.items() if k not in ("np", "numpy")}
        return FormulaEnv(extra)
    raise TypeError(f"formula context must be a mapping, got {type(context).__name__}")


def _user_frame():
    """The first frame outside interlace (and the modules it calls through): the user's."""
    f = sys._getframe(1)
    while f is not None:
        mod = f.f_globals.get("__name__", "") or ""
        if not (mod == "interlace" or mod.startswith("interlace.") or mod in ("contextlib", "functools")):
            return f
        f = f.f_back
    return None


def _acceptable(value: Any) -> bool:
    """Values a formula may take from the caller's scope: data and functions, not
    modules, classes or built-in functions (``os.system``, ``open``)."""
    if isinstance(value, (types.ModuleType, type)):
        return False
    if isinstance(value, types.BuiltinFunctionType) and not isinstance(value, np.ufunc):
        return False
    return True


def caller_variables(names: Iterable[str]) -> dict[str, Any]:
    """Values of ``names`` in the caller's scope (locals, then globals), where acceptable.

    The caller is the first frame outside interlace, as R's formulas look in the
    environment they were written in.
    """
    frame = _user_frame()
    out: dict[str, Any] = {}
    if frame is None:
        return out
    try:
        for n in names:
            if n in frame.f_locals:
                v = frame.f_locals[n]
            elif n in frame.f_globals:
                v = frame.f_globals[n]
            else:
                continue
            if _acceptable(v):
                out[n] = v
    finally:
        del frame
    return out


# ----------------------------------------------------------------------------- checks


def stateful_calls(text: str | None) -> list[str]:
    """The stateful transforms (``scale``, ``center``, ``poly``, splines) a formula or
    expression calls: their state (a mean, knots) depends on the rows they see.

    >>> stateful_calls("x + scale(z) + np.log(t) + poly(w, 2)")
    ['scale', 'poly']
    """
    if not text:
        return []
    from formulaic.transforms import TRANSFORMS

    funcs = {**TRANSFORMS, **FormulaEnv.builtin()}
    names = {k for k, v in funcs.items() if getattr(v, "__is_stateful_transform__", False) and k != "Q"}
    found = [m.group(1) for m in re.finditer(r"(?<![\w.])([^\W\d]\w*)\s*\(", text) if m.group(1) in names]
    return list(dict.fromkeys(found))


_BACKTICK = re.compile(r"`([^`]*)`")
_FACTOR_HINT = {
    "factor": "factor() is R's: write C({arg}) to treat a column as categorical",
    "as_factor": "as.factor() is R's: write C({arg}) to treat a column as categorical",
    "ordered": "ordered() is R's: make the column a pandas ordered Categorical (or polars Enum) to get R's polynomial contrasts",
}


def _sanitize(expr: str) -> tuple[str, dict[str, str]]:
    """Backtick names -> placeholder identifiers (returned with the names they stand for)."""
    names: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        key = f"_bt{len(names)}_"
        names[key] = m.group(1)
        return key

    s = _BACKTICK.sub(sub, expr)
    s = re.sub(r"\bas\.factor\s*\(", "as_factor(", s)
    return s, names


def check_expression(expr: str, columns: Iterable[str], env: FormulaEnv, what: str,
                     resolve_caller: bool = False) -> list[str]:
    """Refuse an expression that could escape the formula namespace; return the columns it reads.

    Every name must be a column of ``columns``, one of ``env``'s names, or
    (with ``resolve_caller``) a variable of the caller's scope, which is then
    added to ``env.caller``. Private and dunder attributes, attributes that
    touch files or run code, lambda, comprehensions and ``:=`` are refused.
    """
    cols = set(columns)
    src, ticks = _sanitize(expr)
    try:
        tree = ast.parse(src.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{what}: cannot read {expr!r} as an expression ({exc.msg})") from None
    known = env.names()
    used: list[str] = []
    unknown: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
                             ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            raise ValueError(f"{what}: {expr} uses {type(node).__name__.lower()}, which formulas do not allow")
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in _DENIED_ATTRS or (
                    node.attr.startswith("to_") and node.attr != "to_numpy"):
                raise ValueError(f"{what}: {expr} reads the attribute {node.attr!r}, which formulas do not allow")
        elif isinstance(node, ast.Name):
            name = ticks.get(node.id, node.id)
            if node.id in ticks:
                if name not in cols and name not in known:
                    unknown.append(name)
                else:
                    used.append(name)
                continue
            if name in cols:  # data first: a column is data whatever its name
                used.append(name)
            elif name.startswith("__"):
                raise ValueError(f"{what}: {expr} uses {name!r}, which formulas do not allow")
            elif name not in known:
                unknown.append(name)
    if unknown and resolve_caller:
        found = caller_variables(dict.fromkeys(unknown))
        env.caller.update(found)
        unknown = [n for n in unknown if n not in found]
    if unknown:
        name = unknown[0]
        for key, hint in _FACTOR_HINT.items():
            m = re.search(rf"\b{key}\s*\(([^()]*)\)", src)
            if name == key and m:
                raise ValueError(f"{what}: {expr}: {hint.format(arg=m.group(1).strip())}")
        dotted = [c for c in cols if c.startswith(name + ".")]
        hint = f" (a column name with dots is written in backticks: `{dotted[0]}`)" if dotted else ""
        raise ValueError(
            f"{what}: {expr} uses {name!r}, which is not a column of data, a formula function or a "
            f"variable of the calling scope{hint}")
    return list(dict.fromkeys(used))


def check_formula(text: str, columns: Iterable[str], env: FormulaEnv, what: str,
                  resolve_caller: bool = False) -> list[str]:
    """:func:`check_expression` for every Python factor of a formula's right-hand side
    (as formulaic parses it); returns the data columns it reads, in order."""
    from formulaic import Formula

    cols = set(columns)
    m = re.search(r"\b(as\.)?factor\s*\(([^()]*)\)", text)
    if m and (m.group(1) or ("factor" not in cols and "factor" not in env.names())):
        key = "as_factor" if m.group(1) else "factor"
        raise ValueError(f"{what}: {m.group(0)}: {_FACTOR_HINT[key].format(arg=m.group(2).strip())}")
    try:
        parsed = Formula(text)
    except Exception as exc:  # formulaic's parse errors have many types
        raise ValueError(f"{what}: cannot parse {text!r}: {str(exc).splitlines()[0]}") from None
    used: list[str] = []
    known = env.names()
    factors = [f for term in _terms(parsed) for f in term.factors]
    for f in factors:
        method = f.eval_method.value
        if method == "literal":
            continue
        if method == "lookup":
            name = f.expr
            if name in cols:
                used.append(name)
                continue
            if name in known:
                continue
            if name.startswith("__"):
                raise ValueError(f"{what}: {name!r} is not allowed in formulas")
            if resolve_caller:
                found = caller_variables([name])
                if found:
                    env.caller.update(found)
                    continue
            raise ValueError(f"{what} refers to column(s) not in data: {name}")
        used += check_expression(f.expr, cols, env, what, resolve_caller)
    return list(dict.fromkeys(used))


def _terms(parsed: Any) -> list[Any]:
    """The terms of a formulaic Formula (simple or structured)."""
    from formulaic.formula import SimpleFormula

    if isinstance(parsed, SimpleFormula):
        return list(parsed)
    out = []
    for part in getattr(parsed, "_flatten", lambda: [])() or []:
        out += _terms(part)
    if not out:
        try:
            out = list(parsed)
        except TypeError:
            out = []
    return out


# ----------------------------------------------------------------------------- materializer


def _is_string_dtype(dt: Any) -> bool:
    if isinstance(dt, pd.StringDtype):
        return True
    if isinstance(dt, pd.ArrowDtype):
        import pyarrow as pa

        t = dt.pyarrow_dtype
        return pa.types.is_string(t) or pa.types.is_large_string(t) or (
            hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t))
    return False


from formulaic.materializers import PandasMaterializer  # noqa: E402
from formulaic.materializers.types import EvaluatedFactor  # noqa: E402
from formulaic.parser.types import Factor  # noqa: E402
from formulaic.transforms.contrasts import C, PolyContrasts  # noqa: E402
from interface_meta import override  # noqa: E402


class RMaterializer(PandasMaterializer):
    """formulaic's pandas materializer with R's defaults for two column kinds.

    - ordered categoricals (pandas ``ordered=True``, polars ``Enum``) get R's
      ``contr.poly``: columns ``f[.L]``, ``f[.Q]``, ``f[.C]``, ``f[^4]``, ... (R's
      ``f.L`` ...); new data replays the training coding;
    - pandas ``string`` and pyarrow string columns are categorical, as
      ``object``/``str`` columns are.
    """

    REGISTER_NAME = "interlace"
    REGISTER_INPUTS = ()
    REGISTER_PRECEDENCE = 0

    @override
    def _is_categorical(self, values: Any) -> bool:
        if isinstance(values, (pd.Series, pd.Categorical)) and _is_string_dtype(values.dtype):
            return True
        return super()._is_categorical(values)

    @override
    def _prepare_factor_evaluation_model_spec(self, model_specs: Any) -> Any:
        # The pooled spec formulaic evaluates factors with has no encoder state:
        # note here which factors the training data coded with contr.poly.
        replay: dict[str, bool] = {}

        def note(ms: Any) -> None:
            for expr, (_, state) in (ms.encoder_state or {}).items():
                cs = state.get("contrasts") if isinstance(state, dict) else None
                if cs is not None:
                    replay[expr] = isinstance(getattr(cs, "contrasts", None), PolyContrasts)

        model_specs._map(note)
        self._replay = replay
        return super()._prepare_factor_evaluation_model_spec(model_specs)

    @override
    def _evaluate_factor(self, factor: Any, spec: Any, drop_rows: Any) -> Any:
        ev = super()._evaluate_factor(factor, spec, drop_rows)
        meta = ev.values.__formulaic_metadata__
        if meta.kind is not Factor.Kind.CATEGORICAL or meta.encoder is not None:
            return ev
        raw = getattr(ev.values, "__wrapped__", ev.values)
        dt = getattr(raw, "dtype", None)
        ordered = isinstance(dt, pd.CategoricalDtype) and bool(dt.ordered)
        if factor.expr in getattr(self, "_replay", {}):
            # new data: replay the training coding, whatever the column's dtype now
            ordered = self._replay[factor.expr]
        if not ordered:
            return ev
        ev = EvaluatedFactor(factor=ev.factor, values=C(raw, contrasts=PolyContrasts()), variables=ev.variables)
        self.factor_cache[factor.expr] = ev
        return ev
