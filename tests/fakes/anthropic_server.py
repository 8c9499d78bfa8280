"""The fake Anthropic Messages API (``devtools/fake_anthropic.py``) and its pytest fixture.

The server itself lives in ``devtools/`` so the benchmarks can start it
without importing the tests.
"""
from __future__ import annotations

import pytest

from devtools.fake_anthropic import (ERROR_TYPES, MIN_CACHEABLE_TOKENS, FakeAnthropic,  # noqa: F401
                                     RecordedRequest, Scripted, free_port, validate_request)


@pytest.fixture
def fake_anthropic():
    """A started FakeAnthropic, stopped after the test."""
    with FakeAnthropic() as fake:
        yield fake
