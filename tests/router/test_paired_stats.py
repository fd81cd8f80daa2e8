"""The paired statistics of the router comparison, against values worked out by hand."""
import pytest

from assistant.study.paired import holm, mcnemar_exact, mean_difference_ci


def test_mcnemar_exact_matches_the_binomial_tail():
    a = [1] * 8 + [0] * 2 + [1] * 5
    b = [0] * 8 + [1] * 2 + [1] * 5
    only_a, only_b, p = mcnemar_exact(a, b)
    assert (only_a, only_b) == (8, 2)
    assert p == pytest.approx(2 * (1 + 10 + 45) / 1024)  # P(X <= 2), X ~ Bin(10, 1/2), two-sided
    assert mcnemar_exact([1, 0], [1, 0]) == (0, 0, 1.0)


def test_holm_steps_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.6]) == [1.0, 1.0]


def test_mean_difference_interval_holds_the_mean_and_keeps_pairs():
    a, b = [1, 1, 0, 1, 0, 1, 1, 1], [0, 1, 0, 1, 0, 0, 1, 1]
    mean, low, high = mean_difference_ci(a, b)
    assert mean == pytest.approx(0.25) and low <= mean <= high and low >= 0  # a never loses a pair
    assert mean_difference_ci([1, 0], [1, 0])[1:] == (0.0, 0.0)
    with pytest.raises(ValueError):
        mean_difference_ci([1], [1, 0])


def test_the_router_leaves_its_defaults_only_for_a_cell_that_beats_the_measured_default():
    from assistant.profiles import load_profile
    from assistant.router.calibration import CalibrationTable, Cell
    from assistant.router.difficulty import Difficulty
    from assistant.router.policy import Resources, decide

    profile, resources = load_profile("laptop-16gb"), Resources(has_index=True, adapter_name=None)
    moderate = Difficulty("moderate", ["a fact"])
    table = CalibrationTable(model="m", profile=profile.name,
                             cells=[Cell("moderate", "base", "m", 10, 0.9, 0.1, (0.8, 1.0))])
    plan = decide("auto", "cpu", "m", profile, resources, moderate, table)
    assert plan.strategy == "rag" and plan.source == "defaults"
    assert any("no measured default" in r for r in plan.reasons)
    table.cells.append(Cell("moderate", "rag", "m", 10, 0.3, 0.5, (0.1, 0.5)))
    plan = decide("auto", "cpu", "m", profile, resources, moderate, table)
    assert plan.strategy == "base" and plan.source == "calibration" and plan.k == 0
    table.cells[1] = Cell("moderate", "rag", "m", 10, 0.7, 0.5, (0.5, 0.85))  # overlaps [0.8, 1.0]
    plan = decide("auto", "cpu", "m", profile, resources, moderate, table)
    assert plan.strategy == "rag" and any("does not beat" in r for r in plan.reasons)


def test_without_notes_the_adapter_serves_personal_requests():
    from assistant.profiles import load_profile
    from assistant.router.difficulty import Difficulty
    from assistant.router.policy import Resources, decide

    profile = load_profile("laptop-16gb")
    for level in ("easy", "moderate", "hard"):
        plan = decide("auto", "cpu", "m", profile, Resources(has_index=False, adapter_name="a1"),
                      Difficulty(level, ["x"]))
        assert plan.strategy == "adapter" and plan.adapter == "a1" and plan.k == 0
        plan = decide("auto", "cpu", "m", profile, Resources(has_index=True, adapter_name="a1"), Difficulty(level, ["x"]))
        assert plan.strategy == "rag" and plan.adapter is None
