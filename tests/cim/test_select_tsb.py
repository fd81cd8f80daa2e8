"""The TSB's learning rate and width are chosen on validation by a coordinate search
(benchmarks/cim/select_tsb.py): the learning rate at a fixed starting width first, then the width
at that learning rate; the committed choice is the one the evaluation plan uses."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.cim.select_tsb import LRS, START_WIDTH, WIDTHS, coordinate_search

COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "cim" / "lm-full" / "tsb-selection.json"


def test_coordinate_search_takes_the_best_rate_then_the_best_width_at_it():
    asked = []

    def score(lr: float, width: int) -> float:
        asked.append((lr, width))
        return abs(lr - 0.003) * 100 + abs(width - 96) / 100  # best: lr 0.003, then width 96

    search = coordinate_search(score, LRS, WIDTHS, START_WIDTH)
    assert asked == [(0.001, 64), (0.003, 64), (0.01, 64), (0.003, 32), (0.003, 96)]
    assert (search["lr"], search["width"]) == (0.003, 96)
    assert [(t["lr"], t["width"]) for t in search["trials"]] == asked
    # the default width stays when no other width does better at the chosen rate
    assert coordinate_search(lambda lr, w: lr + abs(w - 64), LRS, WIDTHS, 64)["width"] == 64


def test_the_evaluation_plan_uses_the_committed_choice():
    from assistant.learn.cim_eval import EvalPlan

    chosen = json.loads(COMMITTED.read_text())
    assert not chosen["protocol"]["quick"] and chosen["protocol"]["seed"] >= EvalPlan().chips
    assert [t["width"] for t in chosen["search"]["trials"][:len(LRS)]] == [START_WIDTH] * len(LRS)
    assert (EvalPlan().lr, EvalPlan().width) == (chosen["search"]["lr"], chosen["search"]["width"])
