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

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

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

SUBJECT_MAX = 998  # RFC 5322 line length
BODY_MAX = 512 * 1024
TEMPLATE_MAX = 256 * 1024
RENDER_SECONDS = 0.5

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


_HTML = SandboxedEnvironment(autoescape=True)
_PLAIN = SandboxedEnvironment(autoescape=False)
for _environment in (_HTML, _PLAIN):
    _environment.globals.clear()  # no range, lipsum, cycler, joiner, namespace, dict
    _environment.filters = {name: f for name, f in _environment.filters.items() if name in FILTERS}


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
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise self.fail(node, f"the filter {node.name!r} is not allowed (allowed: {', '.join(sorted(FILTERS))})")
        for child in node.iter_child_nodes():
            self.check(child, names, loop_depth)

    def _check_for(self, node: nodes.For, names: frozenset[str], loop_depth: int) -> None:
        if loop_depth:
            raise self.fail(node, "loops cannot be nested")
        if node.recursive:
            raise self.fail(node, "recursive loops are not allowed")
        if not isinstance(node.target, nodes.Name):
            raise self.fail(node, "a loop takes one variable")
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
        except TemplateSyntaxError as error:
            raise _problem(field, error.message or "syntax error", error.lineno) from None
        _Checker(field, known).check(tree, frozenset({"contact", "unsubscribe_url"}), 0)
    if html is None and text is None:
        raise ValidationFailed("html", "A campaign needs an html or a text body (or both).")
    return Templates(subject=subject, html=html, text=text)


def _render_one(html: bool, source: str, context: Mapping[str, Any], limit: int) -> str:
    deadline = time.monotonic() + RENDER_SECONDS
    parts: list[str] = []
    size = 0
    for piece in _compiled(html, source).generate(context):
        size += len(piece)
        if size > limit:
            raise RenderFailed(f"the rendered text is over {limit} characters")
        if time.monotonic() > deadline:
            raise RenderFailed(f"rendering took over {RENDER_SECONDS} s")
        parts.append(piece)
    return "".join(parts)


def render(templates: Templates, contact: Mapping[str, Any], unsubscribe_url: str) -> Rendered:
    """Render for one contact (a plain mapping, as ``contact_view`` returns); raises RenderFailed."""
    context = {"contact": contact, "unsubscribe_url": unsubscribe_url}
    try:
        subject = _render_one(False, templates.subject, context, SUBJECT_MAX * 4)
        html = _render_one(True, templates.html, context, BODY_MAX) if templates.html is not None else None
        text = _render_one(False, templates.text, context, BODY_MAX) if templates.text is not None else None
    except RenderFailed:
        raise
    except Exception as error:  # the sandbox refusing something, a type error in a comparison…
        raise RenderFailed(f"{type(error).__name__}: {error}") from None
    subject = " ".join(subject.replace("\r", " ").replace("\n", " ").split())[:SUBJECT_MAX]
    return Rendered(subject=subject, html=html, text=text)
