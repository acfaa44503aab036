"""Fixtures shared by the whole suite."""

import importlib.util
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    # The tests' models are tiny and gain nothing from a second thread, and on a
    # busy 2-core runner OpenMP barriers make two threads several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def load_stage():
    """Import a stage script (`stages/<name>.py`) as a module, to call its `main(argv)` in-process."""

    def load(name: str) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(f"{name}_stage", REPO / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
