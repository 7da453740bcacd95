"""Stands in for moto when the unit tests prove they need none: `make unit-without-moto` puts this
directory first on PYTHONPATH, so any `import moto` fails loudly."""

raise ImportError("moto is blocked here: tests/unit must run without it")
