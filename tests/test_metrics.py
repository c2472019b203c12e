import numpy as np
import pytest

from cl_lab import metrics as M

NAN = np.nan
# R[i, j]: accuracy on task j after training task i
R = np.array([
    [0.9, NAN, NAN],
    [0.6, 0.8, NAN],
    [0.5, 0.7, 0.95],
])


def test_average_accuracy_per_row():
    np.testing.assert_allclose(M.average_accuracy(R), [0.9, 0.7, (0.5 + 0.7 + 0.95) / 3])


def test_first_task_accuracy_over_time():
    np.testing.assert_allclose(M.first_task_accuracy(R), [0.9, 0.6, 0.5])


def test_bwt_hand_computed():
    # ((0.5 - 0.9) + (0.7 - 0.8)) / 2
    assert M.bwt(R) == pytest.approx(-0.25)
    assert M.bwt(R, after=1) == pytest.approx(-0.3)
    assert M.bwt(R, after=0) == 0.0


def test_forgetting_uses_best_earlier_accuracy():
    R2 = R.copy()
    R2[1, 0] = 0.95  # task 0 improved before it was forgotten
    # task 0: max(0.9, 0.95) - 0.5 = 0.45 ; task 1: 0.8 - 0.7 = 0.1
    assert M.forgetting(R2) == pytest.approx((0.45 + 0.1) / 2)
    assert M.forgetting(R) == pytest.approx((0.4 + 0.1) / 2)


def test_fwt_against_reference():
    ref = [0.85, 0.75, 0.9]
    # mean over i>=1 of R[i,i] - ref[i] = ((0.8-0.75) + (0.95-0.9)) / 2
    assert M.fwt(R, ref) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="one accuracy per task"):
        M.fwt(R, [0.1, 0.2])


def test_per_task_table_rows():
    rows = M.per_task_table(R)
    assert [r["after_task"] for r in rows] == [0, 1, 2]
    assert rows[2]["bwt"] == pytest.approx(-0.25)
    assert rows[1]["current_task_accuracy"] == pytest.approx(0.8)


def test_costs_relative():
    np.testing.assert_allclose(M.percent_of_backbone([50, 100], 1000), [5.0, 10.0])
    np.testing.assert_allclose(M.relative_cost([2.0, 3.0], 2.0), [1.0, 1.5])
    with pytest.raises(ValueError):
        M.percent_of_backbone(5, 0)


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match="rows <= columns"):
        M.average_accuracy(np.zeros((3, 2)))


def test_pareto_front_and_fair_metrics_hand_computed():
    src = [0.9, 0.8, 0.6, 0.5, 0.7]
    tgt = [0.4, 0.6, 0.8, 0.7, 0.5]  # (0.5, 0.7) and (0.7, 0.5) are dominated
    fs, ft = M.pareto_front(src, tgt)
    np.testing.assert_allclose(ft, [0.4, 0.6, 0.8])
    np.testing.assert_allclose(fs, [0.9, 0.8, 0.6])
    assert M.max_average_accuracy(src, tgt) == pytest.approx(0.7)
    assert M.source_at_target(src, tgt, 0.7) == pytest.approx(0.7)  # halfway between (0.6, 0.8) and (0.8, 0.6)
    assert M.source_at_target(src, tgt, 0.3) == pytest.approx(0.9)
    assert np.isnan(M.source_at_target(src, tgt, 0.85))


def test_chance_level_is_the_mean_of_one_over_the_classes():
    from types import SimpleNamespace

    assert M.chance_level([SimpleNamespace(num_classes=2), SimpleNamespace(num_classes=4)]) == 0.375
