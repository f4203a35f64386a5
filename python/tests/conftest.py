"""Shared fixtures: a CPU-only runtime (exact unit set), and one with every
unit this machine has."""

import pytest

import xpu


@pytest.fixture
def rt():
    return xpu.Runtime(units="cpu")


@pytest.fixture(scope="module")
def every_unit():
    return xpu.Runtime(units="all")
