"""The layers, checked from the source: what each package may import (ARCHITECTURE.md).

- domain/ is pure: the standard library, a few computing libraries, and itself.
- domain/, ports/ and services/ never import an AWS or persistence library (pynamodb, boto3, botocore, moto).
- services/ never choose an adapter: they receive ports through the tenant context, and never import
  storage/ (the adapters), the composition, HTTP or handler layers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chalicelib"
AWS_AND_PERSISTENCE = {"pynamodb", "boto3", "botocore", "moto"}
DOMAIN_LIBRARIES = {"numpy", "jinja2", "markupsafe", "jsonschema", "cryptography"}

OUTER_LAYERS = ("chalicelib.composition", "chalicelib.http", "chalicelib.handlers")


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` counts as a.b and a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(layer: str) -> dict[str, set[str]]:
    return {path.stem: imports_of(path) for path in sorted((PACKAGE / layer).glob("*.py"))}


def top(name: str) -> str:
    return name.split(".")[0]


def test_domain_imports_only_itself_the_standard_library_and_computing_libraries():
    for module, imported in modules("domain").items():
        outside = {
            name
            for name in imported
            if not name.startswith("chalicelib.domain")
            and top(name) not in sys.stdlib_module_names
            and top(name) not in DOMAIN_LIBRARIES
            and name != "__future__"
        }
        assert outside == set(), f"domain/{module}.py imports {sorted(outside)}"


def test_no_aws_or_persistence_library_in_domain_ports_or_services():
    for layer in ("domain", "ports", "services"):
        for module, imported in modules(layer).items():
            assert not {top(name) for name in imported} & AWS_AND_PERSISTENCE, f"{layer}/{module}.py"


def test_services_receive_ports_and_never_reach_for_adapters_or_the_outer_layers():
    for module, imported in modules("services").items():
        outer = {n for n in imported if n.startswith((*OUTER_LAYERS, "chalicelib.storage"))}
        assert outer == set(), f"services/{module}.py imports {sorted(outer)}"


def test_ports_depend_only_on_the_domain_and_the_resource_names():
    for module, imported in modules("ports").items():
        ours = {n for n in imported if n.startswith("chalicelib.")}
        allowed = {n for n in ours if n.startswith(("chalicelib.domain", "chalicelib.ports", "chalicelib.resources"))}
        assert ours == allowed, f"ports/{module}.py imports {sorted(ours - allowed)}"
