"""Fixtures shared by the whole suite."""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Markers of tests that run a tiny pipeline, a cluster or a browser: minutes where the others take seconds.
HEAVY_MARKERS = ("smoke", "browser")


def pytest_collection_modifyitems(items):
    """Modules holding a heavy test run first, each module's tests in their own order.

    `make test` hands whole modules to its workers in this order: starting the
    long ones first lets the workers finish together instead of one waiting on
    the last pipeline.
    """
    heavy = {item.module.__name__ for item in items if any(item.get_closest_marker(m) for m in HEAVY_MARKERS)}
    items.sort(key=lambda item: item.module.__name__ not in heavy)  # stable: the order within a module stays


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
    from study import stage_module

    return stage_module


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The study's pipeline run once on a slice of real MNIST, its dvc.lock committed.

    Its stages run in this process (`study.run_in_process`: the commands DVC
    resolves, then `dvc commit`). Tests read it, or copy it
    (`study.copy_workspace`) before changing anything.
    """
    from study import commit_lock, make_workspace, run_in_process, tiny_params

    root = make_workspace(tmp_path_factory.mktemp("tiny-study") / "workspace", tiny_params())
    run_in_process(root, "dvc.yaml")
    commit_lock(root)
    return root
