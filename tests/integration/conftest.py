"""Fixtures shared by the integration tests."""

import pytest

from tests.support.world import build_world


@pytest.fixture(scope="module")
def world(api, app):
    """A tenant with one of everything (tests/support/world.py), made once per test module."""
    return build_world(api, app)
