"""Fixtures of the model tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def fresh_dynamo():
    """Compiled graphs of one test do not count against dynamo's limits in the next."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
