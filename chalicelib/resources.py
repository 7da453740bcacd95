"""Physical names of the tables and queues the code talks to.

``infra/template.json`` declares the same resources (with their keys, DLQs and
redrive policies); ``tests/unit/test_infra_declaration.py`` fails if the two
disagree, so there is one declaration in practice.
"""

from __future__ import annotations

MAIN_TABLE = "segments-main"
