"""The convergence test on synthetic histories whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from aebench.evaluation.convergence import convergence_test, objective_slope, read_history_columns, unit_sets

WINDOW, TOLERANCE = 5, 0.1
AU, USAGE = 0.01, 0.01


def history(objective, activity, usage=None) -> dict[str, np.ndarray]:
    """objective (E,), activity (E, D), usage (E, D) (default: proportional to activity) as history columns."""
    activity = np.asarray(activity, dtype=np.float64)
    usage = activity if usage is None else np.asarray(usage, dtype=np.float64)
    columns = {"epoch": np.arange(1, len(objective) + 1.0), "val_loss": np.asarray(objective, dtype=np.float64)}
    columns.update({f"val_activity_{u:03d}": activity[:, u] for u in range(activity.shape[1])})
    columns.update({f"val_usage_{u:03d}": usage[:, u] for u in range(usage.shape[1])})
    return columns


def judged(columns):
    return convergence_test(columns, window=WINDOW, tolerance_nats=TOLERANCE, au_threshold=AU, usage_threshold=USAGE)


def plateau(epochs: int) -> np.ndarray:
    """A -ELBO that falls fast and then flattens: 100 + 20 exp(-epoch / 1.5) (-0.04 nat/epoch at epoch 9)."""
    return 100 + 20 * np.exp(-np.arange(epochs) / 1.5)


STEADY = [[1.0, 0.5, 1e-4]] * 12  # two used and active dimensions, one dead, 12 epochs


def test_a_plateaued_history_with_steady_units_passes():
    result = judged(history(plateau(12), STEADY))
    assert result.converged and result.flat and result.used_stable and result.active_stable
    assert result.reason == "passed" and result.epochs == 12 and result.window == WINDOW
    assert -TOLERANCE < result.slope < 0


def test_a_still_falling_objective_fails_with_its_slope():
    falling = 120 - 0.5 * np.arange(12)  # half a nat per epoch, five times the tolerance
    result = judged(history(falling, STEADY))
    assert not result.converged and not result.flat and result.used_stable
    assert result.slope == pytest.approx(-0.5)
    assert result.reason == "objective still falls 0.5 nats/epoch (tolerance 0.1)"


def test_a_rising_objective_is_flat_it_no_longer_improves():
    assert judged(history(100 + 0.5 * np.arange(12), STEADY)).converged


def test_the_slope_only_reads_the_window():
    early_fall_then_flat = np.r_[200 - 10 * np.arange(7), np.full(5, 130.0)]
    assert judged(history(early_fall_then_flat, STEADY)).slope == pytest.approx(0.0)


def test_a_unit_dying_inside_the_window_fails_both_sets():
    dying = [[1.0, 0.5, 0.3]] * 9 + [[1.0, 0.5, 1e-3], [1.0, 0.5, 1e-4], [1.0, 0.5, 1e-5]]
    result = judged(history(plateau(12), dying))
    assert result.flat and not result.used_stable and not result.active_stable and not result.converged
    assert "used set changes over the last 5 epochs (3/3/2/2/2 units)" in result.reason
    assert "active set changes" in result.reason


def test_a_unit_that_died_before_the_window_passes():
    died_early = [[1.0, 0.5, 0.3]] * 5 + [[1.0, 0.5, 1e-5]] * 7
    assert judged(history(plateau(12), died_early)).converged


def test_a_unit_flickering_across_the_activity_threshold_fails_the_active_set_only():
    flicker = [[1.0, 0.5, 0.012 if epoch % 2 else 0.008] for epoch in range(12)]
    usage = [[1.0, 0.5, 0.0]] * 12  # the decoder ignores it throughout
    result = judged(history(plateau(12), flicker, usage))
    assert result.used_stable and not result.active_stable and not result.converged


def test_usage_is_judged_as_a_share_so_a_rescaled_decoder_changes_nothing():
    usage = np.array([[1.0, 0.5, 0.005]] * 12) * np.linspace(1, 50, 12)[:, None]  # total grows, shares do not
    assert judged(history(plateau(12), STEADY, usage)).used_stable


def test_fewer_epochs_than_the_window_fail_without_a_slope():
    result = judged(history(plateau(4), STEADY[:4]))
    assert not result.converged and result.slope is None
    assert result.reason == "only 4 epochs, fewer than the window of 5"


def test_exactly_the_window_is_enough():
    assert judged(history(np.full(WINDOW, 90.0), STEADY[:WINDOW])).converged


def test_the_metrics_section_names_every_part():
    section = judged(history(plateau(12), STEADY)).to_metrics()
    assert set(section) == {"epochs", "window", "tolerance_nats", "slope", "flat", "used_stable", "active_stable",
                            "converged", "reason"}
    assert section["converged"] is True


def test_the_slope_is_the_least_squares_one():
    assert objective_slope([3.0, 2.0, 1.5, 0.5]) == pytest.approx(-0.8)


def test_unit_sets_per_epoch():
    columns = history(plateau(2), [[1.0, 0.0], [0.0, 1.0]])
    assert unit_sets(columns, "val_activity_", AU, shares=False) == [frozenset({0}), frozenset({1})]


def test_a_history_without_usage_columns_is_refused():
    columns = {k: v for k, v in history(plateau(6), STEADY[:6]).items() if not k.startswith("val_usage_")}
    with pytest.raises(ValueError, match="history has no val_usage_<u> columns"):
        judged(columns)


def test_a_history_file_reads_back_as_columns(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("epoch,val_loss,val_activity_000,val_usage_000\n1,3.5,0.2,0.1\n2,3.0,0.2,0.1\n")
    columns = read_history_columns(path)
    assert list(columns) == ["epoch", "val_loss", "val_activity_000", "val_usage_000"]
    assert columns["val_loss"].tolist() == [3.5, 3.0]
    path.write_text("epoch,val_loss\n1,abc\n")
    with pytest.raises(ValueError, match="not a number"):
        read_history_columns(path)
    with pytest.raises(FileNotFoundError):
        read_history_columns(tmp_path / "missing.csv")
