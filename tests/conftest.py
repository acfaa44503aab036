"""Fixtures shared by the whole suite."""

import importlib.util
import sys
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
        stages = str(REPO / "stages")
        if stages not in sys.path:  # every stage imports `_bootstrap` from its own folder first
            sys.path.insert(0, stages)
        spec = importlib.util.spec_from_file_location(f"{name}_stage", REPO / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses in a stage look their module up while it loads
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The real pipeline (`dvc repro dvc.yaml`) run once on a slice of real MNIST, its dvc.lock committed.

    Tests read it, or copy it (`study.copy_workspace`) before changing anything.
    """
    from study import commit_lock, dvc, make_workspace, tiny_params

    root = make_workspace(tmp_path_factory.mktemp("tiny-study") / "workspace", tiny_params())
    dvc("repro", "dvc.yaml", cwd=root)
    commit_lock(root)
    return root
