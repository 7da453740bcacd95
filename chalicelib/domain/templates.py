"""Email templates: a small, safe subset of Jinja2, checked at save time and rendered in a sandbox.

What a template may say (anything else is a 422 naming the field and the line):

- ``{{ contact.first_name }}``, ``contact.last_name``, ``contact.email``, ``contact.external_id``,
  ``contact.id``, ``contact.group``, ``contact.tags``, ``{{ contact.attributes.city }}`` (an attribute
  of the built-in catalog or one the tenant has used), ``{{ unsubscribe_url }}``;
- ``{% if %}`` / ``{% elif %}`` / ``{% else %}``, comparisons, ``and`` / ``or`` / ``not``, ``~``, ``+``, ``-``;
- one level of ``{% for x in … %}`` (``loop.index`` and friends inside), not recursive;
- the filters in :data:`FILTERS`, and every built-in test (``is defined``…).

No calls, no ``{% set %}``, no macros or includes, no ``*`` / ``**`` / ``%``: what a
template costs is then linear in its own size and the contact's, and rendering is
also bounded by output size and time. Rendering runs in Jinja2's
``SandboxedEnvironment`` as a second wall, with HTML autoescaping for the HTML body;
subjects lose CR and LF (no header injection).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg

from chalicelib.domain.errors import ValidationFailed

CONTACT_FIELDS = frozenset({"id", "external_id", "email", "first_name", "last_name", "group", "tags", "attributes"})
LOOP_FIELDS = frozenset({"index", "index0", "revindex", "revindex0", "first", "last", "length"})
FILTERS = frozenset(
    {
        "upper", "lower", "title", "capitalize", "trim", "default", "d", "escape", "e", "length", "count",
        "first", "last", "join", "round", "int", "float", "string", "truncate", "urlencode", "abs", "sort",
        "unique", "wordcount", "striptags",
    }
)  # fmt: skip
"""Filters whose output is bounded by their input (no ``center``/``indent``/``replace``/``format``/``attr``…)."""


def _whole(low: int, high: int) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    ARGUMENT_TEXT[accepts] = f"a whole number from {low} to {high}"
    return accepts


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 1_000


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not (isinstance(value, float) and not math.isfinite(value))


def _rounding(value: Any) -> bool:
    return value in ("common", "ceil", "floor")


ARGUMENT_TEXT: dict[Callable[[Any], bool], str] = {
    _text: "fixed text of at most 1,000 characters",
    _flag: "true or false",
    _scalar: "a fixed text or number",
    _rounding: "'common', 'ceil' or 'floor'",
}
FILTER_ARGUMENTS: dict[str, tuple[tuple[str, Callable[[Any], bool]], ...]] = {
    "default": (("default_value", _scalar), ("boolean", _flag)),
    "d": (("default_value", _scalar), ("boolean", _flag)),
    "join": (("d", _text),),
    "round": (("precision", _whole(0, 10)), ("method", _rounding)),
    "int": (("default", _whole(-(10**15), 10**15)), ("base", _whole(2, 36))),
    "float": (("default", _scalar),),
    "truncate": (("length", _whole(0, 100_000)), ("killwords", _flag), ("end", _text), ("leeway", _whole(0, 1_000))),
    "trim": (("chars", _text),),
    "sort": (("reverse", _flag), ("case_sensitive", _flag)),
    "unique": (("case_sensitive", _flag),),
}
"""The arguments each filter may take, as fixed values, and what each accepts; filters not listed take none."""

SUBJECT_MAX = 998  # RFC 5322 line length
BODY_MAX = 512 * 1024
TEMPLATE_MAX = 256 * 1024
RENDER_SECONDS = 0.5
INTERMEDIATE_FACTOR = 4
"""A render may build at most this many times its output limit in characters, intermediate strings included."""

_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.For, nodes.Name, nodes.Getattr,
    nodes.Getitem, nodes.Const, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand, nodes.And, nodes.Or,
    nodes.Not, nodes.Neg, nodes.Pos, nodes.Concat, nodes.CondExpr, nodes.List, nodes.Tuple, nodes.Add,
    nodes.Sub, nodes.Keyword,
)  # fmt: skip


class RenderFailed(Exception):
    """A template that passed the save-time check still could not render (size or time bound)."""


@dataclass(frozen=True)
class Templates:
    subject: str
    html: str | None
    text: str | None


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str | None
    text: str | None


class _Budget:
    """What one render may still produce, in characters, across its output *and* every intermediate string a
    filter, ``~`` or ``+`` builds, and until when: a hostile template is refused after at most this much work."""

    def __init__(self, characters: int) -> None:
        self.left = characters
        self.deadline = time.monotonic() + RENDER_SECONDS

    def charge(self, characters: int) -> None:
        self.left -= characters
        if self.left < 0:
            raise RenderFailed("the template produces more text than a message may hold")
        if time.monotonic() > self.deadline:
            raise RenderFailed(f"rendering took over {RENDER_SECONDS} s")


_budget: ContextVar[_Budget] = ContextVar("template_budget")


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(len(item) if isinstance(item, str) else 8 for item in value)
    return 8


def _budgeted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` charged to the render's budget. Marked pass_context, which also keeps Jinja from running it
    at compile time on constants (``'…'|join('…')`` folded 900 M characters into the compiled template)."""
    passes = _PassArg.from_obj(original)

    @pass_context
    def filtered(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        if name == "join":
            items = [str(item) for item in value] if not isinstance(value, str) else list(value)
            separator = str(args[0] if args else kwargs.get("d", ""))
            budget.charge(sum(map(len, items)) + len(separator) * max(len(items) - 1, 0))
        by_kind: dict[_PassArg | None, tuple[Any, ...]] = {
            _PassArg.context: (context,),
            _PassArg.eval_context: (context.eval_ctx,),
            _PassArg.environment: (context.environment,),
        }
        leading = by_kind.get(passes, ())
        result = original(*leading, value, *args, **kwargs)
        if isinstance(result, Iterator):
            result = list(result)  # unique() yields: its text would be "<generator object …>"
        budget.charge(_size(result))
        return result

    return filtered


class _BudgetedCode(CodeGenerator):
    """Compiles ``a ~ b`` into a call that charges the joined text (escaped, as written) to the budget."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.budgeted_concat(context, (")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


def _shown(value: Any) -> Any:
    """How a value is written into the message: a list as its items, comma-separated (not Python's repr)."""
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return value


class _Environment(SandboxedEnvironment):
    code_generator_class = _BudgetedCode
    intercepted_binops = frozenset({"+"})

    def __init__(self, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, finalize=_shown)
        self.globals.clear()  # no range, lipsum, cycler, joiner, namespace, dict
        self.filters = {name: _budgeted(name, f) for name, f in self.filters.items() if name in FILTERS}

    def budgeted_concat(self, context: Any, parts: tuple[Any, ...]) -> str:
        texts = [_shown(part) for part in parts]
        joined = (markup_join if context.eval_ctx.autoescape else str_join)(texts)
        _budget.get().charge(len(joined))
        return joined

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        result = super().call_binop(context, operator, left, right)
        _budget.get().charge(_size(result))
        return result


_HTML = _Environment(autoescape=True)
_PLAIN = _Environment(autoescape=False)


@lru_cache(maxsize=256)
def _compiled(html: bool, source: str) -> Template:
    """Compiling costs about a millisecond; a campaign renders the same three sources for every recipient."""
    return (_HTML if html else _PLAIN).from_string(source)


def _problem(field: str, message: str, line: int | None) -> ValidationFailed:
    where = f" (line {line})" if line else ""
    return ValidationFailed(field, f"{field}: {message}{where}.", **({"line": line} if line else {}))


class _Checker:
    def __init__(self, field: str, attributes: frozenset[str]) -> None:
        self.field = field
        self.attributes = attributes

    def fail(self, node: nodes.Node, message: str) -> ValidationFailed:
        return _problem(self.field, message, getattr(node, "lineno", None))

    def check(self, node: nodes.Node, names: frozenset[str], loop_depth: int) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            raise self.fail(node, f"{type(node).__name__.lower()} is not allowed in templates")
        if isinstance(node, nodes.For):
            self._check_for(node, names, loop_depth)
            return
        if isinstance(node, nodes.Name):
            if node.name not in names:
                raise self.fail(node, f"unknown variable {node.name!r}")
            return
        if isinstance(node, nodes.Getattr):
            self._check_getattr(node, names)
            return
        if isinstance(node, nodes.Getitem) and not (
            isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, int)
        ):
            raise self.fail(node, "only a fixed position can be indexed, as in contact.tags[0]")
        if isinstance(node, nodes.Filter):
            self._check_filter(node)
        if isinstance(node, nodes.Const) and isinstance(node.value, float) and not math.isfinite(node.value):
            raise self.fail(node, "numbers in a template are finite")
        for child in node.iter_child_nodes():
            self.check(child, names, loop_depth)

    def _check_filter(self, node: nodes.Filter) -> None:
        """A known filter whose arguments are fixed values it accepts (``truncate(-5)`` can never render)."""
        if node.name not in FILTERS:
            raise self.fail(node, f"the filter {node.name!r} is not allowed (allowed: {', '.join(sorted(FILTERS))})")
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise self.fail(node, f"{node.name} takes its arguments one by one")
        spec = FILTER_ARGUMENTS.get(node.name, ())
        names = [name for name, _ in spec]
        given: dict[str, Any] = {}
        if len(node.args) > len(spec):
            raise self.fail(node, f"{node.name} takes at most {len(spec)} arguments ({', '.join(names) or 'none'})")
        for (name, _), argument in zip(spec, node.args, strict=False):
            given[name] = argument
        for keyword in node.kwargs:
            if keyword.key not in names or keyword.key in given:
                raise self.fail(node, f"{node.name} has no argument {keyword.key!r} here")
            given[str(keyword.key)] = keyword.value
        for name, accepts in spec:
            if name not in given:
                continue
            argument = given[name]
            if not isinstance(argument, nodes.Const) or not accepts(argument.value):
                raise self.fail(node, f"{node.name}: {name} must be {ARGUMENT_TEXT[accepts]}")
        if node.name == "truncate":
            length = given["length"].value if "length" in given else 255
            end = given["end"].value if "end" in given else "..."
            if length < len(end):
                raise self.fail(node, "truncate: length must be at least the length of end")

    def _check_for(self, node: nodes.For, names: frozenset[str], loop_depth: int) -> None:
        if loop_depth:
            raise self.fail(node, "loops cannot be nested")
        if node.recursive:
            raise self.fail(node, "recursive loops are not allowed")
        if not isinstance(node.target, nodes.Name):
            raise self.fail(node, "a loop takes one variable")
        if node.target.name in ("loop", "contact", "unsubscribe_url"):
            raise self.fail(node, f"a loop variable cannot be called {node.target.name!r}")
        if node.test is not None:
            self.check(node.test, names | {node.target.name}, loop_depth + 1)
        self.check(node.iter, names, loop_depth)
        inside = names | {node.target.name, "loop"}
        for child in node.body:
            self.check(child, inside, loop_depth + 1)
        for child in node.else_:
            self.check(child, names, loop_depth)

    def _check_getattr(self, node: nodes.Getattr, names: frozenset[str]) -> None:
        base = node.node
        root = base
        while isinstance(root, (nodes.Getattr, nodes.Getitem)):
            root = root.node
        if isinstance(root, nodes.Name) and root.name not in names:
            raise self.fail(root, f"unknown variable {root.name!r}")
        if isinstance(base, nodes.Name) and base.name == "contact" and "contact" in names:
            if node.attr not in CONTACT_FIELDS:
                raise self.fail(
                    node, f"contact has no field {node.attr!r} (fields: {', '.join(sorted(CONTACT_FIELDS))})"
                )
            return
        if isinstance(base, nodes.Name) and base.name == "loop" and "loop" in names:
            if node.attr not in LOOP_FIELDS:
                raise self.fail(node, f"loop has no field {node.attr!r}")
            return
        if (
            isinstance(base, nodes.Getattr)
            and base.attr == "attributes"
            and isinstance(base.node, nodes.Name)
            and base.node.name == "contact"
        ):
            if node.attr not in self.attributes:
                raise self.fail(node, f"unknown attribute {node.attr!r}")
            return
        raise self.fail(node, f"{node.attr!r} cannot be read here; templates read contact fields and attributes")


def check_templates(subject: str, html: str | None, text: str | None, attributes: Iterable[str]) -> Templates:
    """The save-time check: every part parses and uses only what templates may use."""
    known = frozenset(attributes)
    for field, source, environment in (("subject", subject, _PLAIN), ("html", html, _HTML), ("text", text, _PLAIN)):
        if source is None:
            continue
        if len(source) > TEMPLATE_MAX:
            raise ValidationFailed(field, f"{field} is longer than {TEMPLATE_MAX} characters.")
        try:
            tree = environment.parse(source)
            _Checker(field, known).check(tree, frozenset({"contact", "unsubscribe_url"}), 0)
            environment.compile(source)  # what only compiling finds (a loop variable named loop…)
        except TemplateSyntaxError as error:
            raise _problem(field, error.message or "syntax error", error.lineno) from None
        except RecursionError:
            raise _problem(field, "the template nests too deeply", None) from None
    if html is None and text is None:
        raise ValidationFailed("html", "A campaign needs an html or a text body (or both).")
    return Templates(subject=subject, html=html, text=text)


def _render_one(html: bool, source: str, context: Mapping[str, Any], limit: int) -> str:
    budget = _Budget(limit * INTERMEDIATE_FACTOR)
    token = _budget.set(budget)
    parts: list[str] = []
    size = 0
    try:
        for piece in _compiled(html, source).generate(context):
            size += len(piece)
            if size > limit:
                raise RenderFailed(f"the rendered text is over {limit} characters")
            budget.charge(len(piece))
            parts.append(piece)
    finally:
        _budget.reset(token)
    return "".join(parts)


def _template_line(error: BaseException) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to point at template lines)."""
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def render(templates: Templates, contact: Mapping[str, Any], unsubscribe_url: str) -> Rendered:
    """Render for one contact (a plain mapping, as ``contact_view`` returns); raises RenderFailed.

    The message of a RenderFailed is meant for people: it never shows Python's own words."""
    context = {"contact": contact, "unsubscribe_url": unsubscribe_url}
    part = "subject"
    try:
        subject = _render_one(False, templates.subject, context, SUBJECT_MAX * 4)
        part = "html"
        html = _render_one(True, templates.html, context, BODY_MAX) if templates.html is not None else None
        part = "text"
        text = _render_one(False, templates.text, context, BODY_MAX) if templates.text is not None else None
    except RenderFailed as problem:
        raise RenderFailed(f"{part}: {problem}") from None
    except Exception as error:  # the sandbox refusing something, a comparison of a number with text…
        line = _template_line(error)
        where = f" (line {line})" if line else ""
        raise RenderFailed(
            f"{part}{where}: a value of this contact cannot be used the way the template uses it"
        ) from None
    subject = " ".join(subject.replace("\r", " ").replace("\n", " ").split())[:SUBJECT_MAX]
    return Rendered(subject=subject, html=html, text=text)
