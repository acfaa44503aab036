"""Fixtures shared by the whole suite."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # The tests' models are tiny and gain nothing from a second thread, and on a
    # busy 2-core runner OpenMP barriers make two threads several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
