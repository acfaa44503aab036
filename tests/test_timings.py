"""The timings page's arithmetic: each stage's share of the compute, and the drift of epoch times."""

from __future__ import annotations

import pytest

from aebench.reporting.render import Paragraph, Table
from aebench.reporting.timings import compute_shares, epoch_drift, timing_blocks


def test_shares_are_percentages_of_the_summed_seconds():
    shares = compute_shares({"train": 850.0, "evaluate": 150.0})
    assert shares == pytest.approx({"train": 85.0, "evaluate": 15.0})
    assert compute_shares({"train": 0.0}) == {"train": 0.0}


def test_drift_compares_the_last_epoch_with_the_second_and_skips_short_runs():
    drift = epoch_drift([[9.0, 4.0, 4.4, 5.0], [7.0, 5.0, 5.0], [3.0, 3.0]])  # the third: too short to count
    assert drift == pytest.approx({"median": 1.125, "min": 1.0, "max": 1.25, "models": 2})
    assert epoch_drift([[3.0, 3.0]]) is None


def test_the_page_states_each_stages_share_and_the_drift():
    records = [
        {"stage": "train", "model": "mnist-vae-30-s0", "seconds": 90.0, "epoch_seconds": [10.0, 8.0, 8.0, 8.0]},
        {"stage": "train", "model": "mnist-vae-30-s1", "seconds": 90.0, "epoch_seconds": [10.0, 8.0, 8.0, 12.0]},
        {"stage": "evaluate", "model": "mnist-vae-30-s0", "seconds": 20.0},
    ]
    blocks = timing_blocks(records)
    totals = next(block for block in blocks if isinstance(block, Table))
    assert totals.rows == [["train", "2", "180.0", "90.0"], ["evaluate", "1", "20.0", "10.0"]]
    drift = [block.text for block in blocks if isinstance(block, Paragraph) and "last against second" in block.text]
    assert drift and "over 2 models): median 1.25, range 1.00 to 1.50" in drift[0]
