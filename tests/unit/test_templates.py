"""Templates: the save-time check, the sandboxed render, escaping and bounds (no moto)."""

from __future__ import annotations

import time

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.templates import FILTERS, RenderFailed, Templates, check_templates, render

CONTACT = {
    "id": "ctc_0000001",
    "external_id": "p-1",
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "group": None,
    "tags": ["vip", "local"],
    "attributes": {"city": "London"},
}
ATTRIBUTES = {"city", "country"}


def problem(subject="Hi", html=None, text="body") -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        check_templates(subject, html, text, ATTRIBUTES)
    return raised.value


def test_a_template_renders_contact_fields_attributes_loops_and_the_unsubscribe_url():
    templates = check_templates(
        "Hello {{ contact.first_name }}",
        "<p>{{ contact.first_name }} in {{ contact.attributes.city }}"
        "{% for tag in contact.tags %} #{{ loop.index }} {{ tag|upper }}{% endfor %}"
        "{% if contact.attributes.country is defined %}!{% else %}?{% endif %}</p>"
        "<a href='{{ unsubscribe_url }}'>unsubscribe</a>",
        "{{ contact.attributes.country|default('somewhere') }}",
        ATTRIBUTES,
    )
    rendered = render(templates, CONTACT, "https://x.test/unsubscribe/t")
    assert rendered.subject == "Hello Ada"
    assert rendered.html == (
        "<p>Ada in London #1 VIP #2 LOCAL?</p><a href='https://x.test/unsubscribe/t'>unsubscribe</a>"
    )
    assert rendered.text == "somewhere"


def test_html_is_escaped_but_text_and_subject_are_not_html():
    templates = check_templates(
        "{{ contact.first_name }}", "<b>{{ contact.first_name }}</b>", "{{ contact.first_name }}", ()
    )
    rendered = render(templates, {**CONTACT, "first_name": "<script>alert(1)</script>"}, "u")
    assert rendered.html == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"
    assert "<script>" not in rendered.html
    assert rendered.text == "<script>alert(1)</script>"


def test_subjects_lose_line_breaks_so_no_header_can_be_injected():
    templates = check_templates("Hi {{ contact.first_name }}", None, "x", ())
    rendered = render(templates, {**CONTACT, "first_name": "Ada\r\nBcc: victim@example.com"}, "u")
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert rendered.subject == "Hi Ada Bcc: victim@example.com"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ contact|attr('format') }}",
        "{{ contact.first_name|attr('__class__') }}",
        "{{ range(10**7) }}",
        "{{ range(10**7)|list }}",
        "{{ 'a' * 1000000000 }}",
        "{{ 9 ** 9 ** 9 }}",
        "{{ '%s' % contact }}",
        "{{ contact.first_name.format(contact) }}",
        "{{ contact.first_name.__class__ }}",
        "{{ self }}",
        "{{ config }}",
        "{% set x = 'a' %}{{ x }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{% for a in contact.tags %}{% for b in contact.tags %}{% endfor %}{% endfor %}",
        "{% for a in contact.tags recursive %}{{ loop(a) }}{% endfor %}",
        "{% include 'x.html' %}",
        "{% extends 'base.html' %}",
        "{% import 'x' as y %}",
        "{{ contact.first_name|center(100000000) }}",
        "{{ contact.first_name|replace('a', 'aaaaaaaa') }}",
        "{{ contact.first_name|indent(100000000) }}",
        "{{ contact.first_name|format(1) }}",
        "{{ contact.tags|map('upper') }}",
        "{{ contact.tags[contact.id] }}",
        "{{ contact['first_name'] }}",
        "{% filter upper %}x{% endfilter %}",
        "{% with a = 1 %}{{ a }}{% endwith %}",
        "{{ dict(a=1) }}",
    ],
)
def test_the_injection_corpus_is_refused_at_save_time_naming_field_and_line(source):
    refused = problem(html=f"<p>\n{source}</p>")
    assert refused.status == 422
    assert refused.details["field"] == "html"
    assert refused.details["line"] == 2


def test_unknown_variables_fields_and_attributes_are_reported_with_their_line():
    assert problem(text="line one\nline two {{ contct.first_name }}").details == {"field": "text", "line": 2}
    assert "unknown variable 'contct'" in problem(text="\n{{ contct.first_name }}").message
    assert "no field 'firstname'" in problem(subject="{{ contact.firstname }}").message
    assert "unknown attribute 'cty'" in problem(subject="Hi {{ contact.attributes.cty }}").message


def test_syntax_errors_name_their_line():
    refused = problem(html="<p>\n\n{% if contact.first_name %}unclosed")
    assert refused.details["field"] == "html"
    assert refused.details["line"] == 3


def test_a_campaign_needs_a_body():
    assert problem(text=None).details["field"] == "html"


def test_every_allowed_filter_is_real_and_bounded_filters_only():
    templates = check_templates("{{ contact.tags|join(', ')|upper }} {{ contact.tags|length }}", None, "x", ())
    assert render(templates, CONTACT, "u").subject == "VIP, LOCAL 2"
    assert {"attr", "format", "center", "replace", "map", "indent", "safe"}.isdisjoint(FILTERS)


def test_rendered_output_is_bounded_even_by_a_legal_loop():
    templates = Templates(
        subject="s", html=None, text="{% for t in contact.tags %}{{ contact.first_name }}{% endfor %}"
    )
    huge = {**CONTACT, "tags": ["t"] * 1000, "first_name": "x" * 1000}
    with pytest.raises(RenderFailed):
        render(templates, huge, "u")


def test_a_missing_attribute_renders_empty_not_an_error():
    templates = check_templates("Hi {{ contact.attributes.city }}!", None, "x", ATTRIBUTES)
    assert render(templates, {**CONTACT, "attributes": {}}, "u").subject == "Hi !"


# --- the work a template may cost is bounded while it is done, not after -------------------------------------

BIO = "x" * 1_000
BIG_CONTACT = {**CONTACT, "attributes": {"city": BIO, "bio": BIO}, "tags": [BIO[:64]] * 100}
SEPARATOR = "'" + "s" * 1_000 + "'"
MULTIPLYING_TEMPLATES = [
    "{{ '" + "a" * 30_000 + "'|join(" + SEPARATOR + ") }}",  # a constant: Jinja folded it while compiling
    "{{ contact.attributes.bio|join(" + SEPARATOR + ") }}",
    "{{ ((contact.attributes.bio|join(" + SEPARATOR + "))|join(" + SEPARATOR + "))|join('zz') }}",
    ("{% if (contact.attributes.bio|join(" + SEPARATOR + "))|length > 0 %}x{% endif %}") * 50,
    "{{ " + " ~ ".join(["contact.attributes.bio"] * 3_000) + " }}",
    "{{ " + " + ".join(["contact.attributes.bio"] * 3_000) + " }}",
    "{% for tag in contact.tags %}{{ contact.tags|join(contact.attributes.city|truncate(900)) }}{% endfor %}",
]


def test_a_huge_constant_separator_is_refused_at_save_time_without_building_anything():
    started = time.perf_counter()
    refused = problem(text="{{ '" + "a" * 30_000 + "'|join('" + "b" * 30_000 + "') }}")
    assert "join: d must be fixed text" in refused.message
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("source", MULTIPLYING_TEMPLATES, ids=range(len(MULTIPLYING_TEMPLATES)))
def test_a_multiplying_template_is_saved_fast_and_refused_within_the_bound_when_rendered(source):
    started = time.perf_counter()
    with pytest.raises((RenderFailed, ValidationFailed)) as refused:
        render(check_templates("Hi", None, source, {"city", "bio"}), BIG_CONTACT, "https://x.test/u")
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed  # checked work, not a 20 s compile (a generous bound for a shared CI core)
    assert str(refused.value).startswith("text") and "Error" not in str(refused.value)


def test_the_budget_counts_intermediate_strings_not_only_the_output():
    source = ("{% if (contact.attributes.bio|join(" + SEPARATOR + "))|length > 0 %}x{% endif %}") * 50
    templates = check_templates("Hi", None, source, {"bio"})
    with pytest.raises(RenderFailed):
        render(templates, BIG_CONTACT, "https://x.test/u")
    assert render(templates, {**CONTACT, "attributes": {"bio": "ab"}}, "u").text == "x" * 50


@pytest.mark.parametrize(
    "source, words",
    [
        ("{{ 'abc'|truncate(-5) }}", "truncate: length"),
        ("{{ 'abc'|truncate(2) }}", "at least the length of end"),
        ("{{ 'abc'|truncate(contact.first_name) }}", "truncate: length"),
        ("{{ 'abc'|round(99) }}", "round: precision"),
        ("{{ 'abc'|round(1, 'up') }}", "round: method"),
        ("{{ contact.tags|join(attribute='x') }}", "no argument"),
        ("{{ contact.tags|unique(attribute='x') }}", "no argument"),
        ("{{ 'x'|upper(1) }}", "at most 0 arguments"),
        ("{{ 1e999 }}", "finite"),
        ("{% for loop in contact.tags %}{{ loop }}{% endfor %}", "cannot be called 'loop'"),
        ("{{ 'x'|int(0, 99) }}", "int: base"),
    ],
)
def test_templates_that_can_never_render_are_refused_at_save_time(source, words):
    refused = problem(text=source)
    assert words in refused.message and refused.details["line"] == 1


def test_render_errors_speak_to_people_not_in_python():
    templates = check_templates("Hi", None, "line one\n{{ contact.attributes.city + 1 }}", ATTRIBUTES)
    with pytest.raises(RenderFailed) as refused:
        render(templates, CONTACT, "u")
    message = str(refused.value)
    assert message.startswith("text (line 2):")
    for internal in ("Error", "Traceback", "object at", "<generator", "NameError", "'str'"):
        assert internal not in message


def test_lists_render_as_their_items_never_as_python_objects():
    rendered = render(check_templates("Hi", None, "{{ contact.tags|unique }}/{{ contact.tags }}", ATTRIBUTES),
                      CONTACT, "u")  # fmt: skip
    assert rendered.text == "vip, local/vip, local"
