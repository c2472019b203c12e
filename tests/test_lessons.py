"""The notebooks' 'what you should see' texts say what their numbers support, and nothing else."""

import math
import re

import pandas as pd
import pytest

from cl_lab.lab.lessons import (
    FALLS,
    LIKE_SGD,
    NEAR_CHANCE,
    NOISE,
    what_you_should_see_02,
    what_you_should_see_02_ablation,
    what_you_should_see_03,
    what_you_should_see_04,
    what_you_should_see_05,
    what_you_should_see_05_bn,
    what_you_should_see_05_scratch,
)


def _first_task(curves: dict[str, list[float]]) -> pd.DataFrame:
    """Accuracy rows as cl_lab.results.load gives them: task 0 after each task, plus a later task's rows."""
    rows = [{"method": m, "after_task": i, "task": 0, "accuracy": a} for m, acc in curves.items() for i, a in enumerate(acc)]
    rows += [{"method": m, "after_task": len(acc) - 1, "task": 1, "accuracy": 0.0} for m, acc in curves.items()]
    return pd.DataFrame(rows[::-1])  # unsorted: the function must order by after_task


def _line(text: str, name: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(f"- **{name}**"))


def test_02_says_falls_exactly_when_the_first_task_drops_by_more_than_the_threshold():
    text = what_you_should_see_02(_first_task({
        "clr": [0.8, 0.8, 0.8],
        "sgd": [0.8, 0.7, 0.8 - FALLS - 0.01],
        "ewc": [0.8, 0.75, 0.8 - FALLS + 0.01],
        "lwf": [0.8, 0.9, 0.85],
    }))
    assert "flat" in _line(text, "clr")
    assert "falls from 0.80 to 0.77" in _line(text, "sgd")
    assert "stays near 0.80" in _line(text, "ewc")  # dropped, but by less than the threshold
    assert "stays near 0.80" in _line(text, "lwf")  # a drop in the middle, not at the end, is not forgetting
    assert "CLR's first-task accuracy moved" not in text


def test_02_flags_a_clr_line_that_moves_and_handles_a_single_task():
    assert "CLR's first-task accuracy moved" in what_you_should_see_02(_first_task({"clr": [0.8, 0.8, 0.79]}))
    one = what_you_should_see_02(_first_task({"clr": [0.8], "sgd": [0.6]}))
    assert "Only one task ran" in one and "- **" not in one


def _table(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "avg_accuracy": a, "forgetting": f} for m, (a, f) in rows.items()]
                        ).sort_values("avg_accuracy", ascending=False)


def test_05_names_the_methods_that_keep_everything_forget_like_sgd_or_sit_at_chance():
    chance = 0.25
    text = what_you_should_see_05(_table({
        "clr": (0.70, 0.0),
        "ccll": (0.65, 0.004),
        "sgd": (0.50, 0.30),
        "ewc": (0.52, 0.30 - LIKE_SGD + 0.01),
        "si": (0.55, 0.30 - LIKE_SGD - 0.01),
        "lwf": (chance + NEAR_CHANCE - 0.01, 0.01),
        "er": (chance + NEAR_CHANCE + 0.01, 0.02),
    }), chance, 3)
    assert text.startswith("Average chance level over these 3 tasks: 0.25.")
    assert "forgetting 0 for clr, ccll;" in text
    assert "highest average accuracy clr 0.70, ccll 0.65, si 0.55" in text
    assert "largest forgetting sgd 0.30, ewc 0.26, si 0.24" in text
    assert "Here ewc forget about as much as fine-tuning (0.30)" in text
    assert "Within 0.05 of chance: lwf.**" in text


def test_05_reads_reference_rows_apart_as_bounds():
    table = _table({"joint": (0.80, 0.0), "feature-extraction": (0.60, 0.0), "sgd": (0.40, 0.3),
                    "clr": (0.90, 0.0), "ewc": (0.58, 0.1)})
    table["reference"] = table.method.isin(["joint", "feature-extraction"])
    text = what_you_should_see_05(table, 0.1, 2)
    assert "highest average accuracy clr 0.90, ewc 0.58, sgd 0.40" in text  # references are not ranked
    assert "**Reference rows**" in text and "joint 0.80" in text and "feature-extraction 0.60" in text
    assert f"by more than {NEAR_CHANCE}: sgd." in text  # ewc is within the margin of the floor
    assert "Above joint training by more than 0.05: clr" in text


@pytest.mark.parametrize("shipped,random,verdict", [(0.60, 0.30, "higher by 0.300"), (0.32, 0.30, "within noise")])
def test_02_ablation_credits_the_pretrained_backbone_only_beyond_the_noise_margin(shipped, random, verdict):
    table = pd.DataFrame({"backbone": ["shipped (source-pretrained)", "random", "first-task"],
                          "avg_accuracy": [shipped, random, shipped + NOISE + 0.01]})
    text = what_you_should_see_02_ablation(table)
    line = next(ln for ln in text.splitlines() if ln.startswith("- shipped vs random"))
    assert verdict in line and (("ceiling" in line) == (verdict != "within noise"))
    assert "specialised" not in text  # first-task scored higher here: no claim that it transfers worse


def test_05_without_sgd_or_near_chance_methods_says_neither():
    text = what_you_should_see_05(_table({"clr": (0.7, 0.0), "ewc": (0.6, 0.5)}), 0.1, 2)
    assert "as much as fine-tuning" not in text and "of chance" not in text
    assert "forgetting 0 for clr;" in text
    assert "forgetting 0 for none" in what_you_should_see_05(_table({"ewc": (0.6, -0.01)}), 0.1, 2)


def test_05_scratch_reports_each_drop_and_only_the_methods_near_chance():
    table = pd.DataFrame([
        {"method": "sgd (random weights)", "avg_accuracy": 0.50, "task 1 when learnt": 0.7, "task 1 at the end": 0.4},
        {"method": "psp", "avg_accuracy": 0.62, "task 1 when learnt": 0.7, "task 1 at the end": 0.65},
        {"method": "supsup", "avg_accuracy": 0.2 + NEAR_CHANCE - 0.01, "task 1 when learnt": 0.3,
         "task 1 at the end": 0.3},
    ])
    text = what_you_should_see_05_scratch(table, 0.2, 3)
    assert ("Drop of task 1 from when it was learnt to the end: sgd (random weights) +0.300, psp +0.050, "
            "supsup +0.000.") in text
    assert "Within 0.05 of chance: supsup.**" in text
    table.loc[2, "avg_accuracy"] = 0.2 + NEAR_CHANCE + 0.01
    assert "of chance" not in what_you_should_see_05_scratch(table, 0.2, 3)


def _mdl(accuracy: dict[str, float], params_vs_independent: float, per_domain: dict[str, dict[str, float]] | None = None,
         not_converged=(), chance_rewards=()) -> dict:
    summary = pd.DataFrame([{"setup": s, "mean_accuracy": a, "converged": None if s == "single-path" else True,
                             "params_vs_independent": params_vs_independent if s == "mpnas" else 1.0 if s == "independent"
                             else 0.3} for s, a in accuracy.items()])
    per_domain = per_domain or {s: {"shapes": a, "counting": a} for s, a in accuracy.items()}
    results = pd.DataFrame([{"setup": s, "domain": d, "accuracy": a} for s, doms in per_domain.items()
                            for d, a in doms.items()])
    return {"summary": summary, "results": results, "not_converged": list(not_converged),
            "chance_rewards": list(chance_rewards),
            "config": {"convergence_threshold": 0.3, "abdp_reading": "softmax", "domain_names": ["shapes", "counting"]}}


CHANCE = {"shapes": 0.1, "counting": 0.125}


def _bullet(text: str, start: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(f"- {start}"))


@pytest.mark.parametrize("ratio,word", [(0.8, "smaller"), (1.12, "larger"), (1.0, "exactly")])
def test_04_calls_mpnas_smaller_only_when_it_is(ratio, word):
    text = what_you_should_see_04(_mdl({"mpnas": 0.5, "mpnas-uniform": 0.5, "independent": 0.5}, ratio), CHANCE)
    size = _bullet(text, "**Size**")
    assert word in size
    assert ("saved" in size and "saved no" not in size and "saved nothing" not in size) == (ratio < 1)
    if ratio > 1:
        assert "1.12x" in size and "12.0% more" in size
    if ratio < 1:
        assert "saved 20.0% (at most 50% with 2 domains)" in size


@pytest.mark.parametrize("delta,verdict", [(NOISE + 0.01, "beats the uniform loss"),
                                           (NOISE - 0.01, "is not distinguishable"),
                                           (-(NOISE - 0.01), "is not distinguishable"),
                                           (-(NOISE + 0.01), "scores below the uniform loss")])
def test_04_credits_abdp_only_beyond_the_noise_margin(delta, verdict):
    text = what_you_should_see_04(_mdl({"mpnas": 0.5 + delta, "mpnas-uniform": 0.5, "independent": 0.5 + delta}, 0.9),
                                  CHANCE)
    abdp = _bullet(text, "**ABDP (softmax reading)**")
    assert verdict in abdp
    assert ("within noise" in abdp) == (abs(delta) <= NOISE)
    assert "within noise" in _bullet(text, "**Accuracy**")


def test_04_names_the_domains_at_chance_and_who_sits_there():
    per_domain = {"mpnas": {"shapes": 0.11, "counting": 0.6}, "mpnas-uniform": {"shapes": 0.12, "counting": 0.5},
                  "single-path": {"shapes": 0.4, "counting": 0.7}}
    text = what_you_should_see_04(_mdl({"mpnas": 0.35, "mpnas-uniform": 0.31, "single-path": 0.55}, 1.0, per_domain),
                                  CHANCE)
    near = _bullet(text, "**Within 0.05 of chance**")
    assert "shapes (chance 0.10; mpnas 0.11, mpnas-uniform 0.12)" in near
    assert "counting" not in near
    assert "Highest mean accuracy: single-path, 0.550 (it starts from a pretrained backbone" in text
    assert "**Size**" not in text  # no independent NAS in this run: no size claim
    everyone = {"mpnas": {"shapes": 0.1, "counting": 0.6}, "independent": {"shapes": 0.12, "counting": 0.6}}
    assert "shapes (chance 0.10; every setup, 0.10 to 0.12)" in what_you_should_see_04(
        _mdl({"mpnas": 0.35, "independent": 0.35}, 1.0, everyone), CHANCE)
    above = what_you_should_see_04(_mdl({"mpnas": 0.5, "independent": 0.5}, 0.9), CHANCE)
    assert "Every setup is more than 0.05 above chance on every domain." in above


def test_04_reports_convergence_and_chance_rewards_from_the_run():
    flagged = what_you_should_see_04(_mdl({"mpnas": 0.5, "independent": 0.5}, 0.9, not_converged=["mpnas/shapes"],
                                          chance_rewards=["independent/counting"]), CHANCE)
    assert "**Not converged** (final entropy above 30% of its start): mpnas/shapes." in flagged
    assert "**Reward at chance during the search**: independent/counting." in flagged
    assert "Every search converged" not in flagged
    clean = what_you_should_see_04(_mdl({"mpnas": 0.5, "independent": 0.5}, 0.9), CHANCE)
    assert "Every search converged." in clean and "Not converged" not in clean and "Reward at chance" not in clean


def test_04_reads_a_real_mdl_run_directory(tmp_path):
    from cl_lab.mdl import run_mdl
    from cl_lab.results import load_mdl

    run_dir = run_mdl(out=tmp_path, stream="synth-mini", domains="2", setups="mpnas,mpnas-uniform,independent",
                      search_steps=2, train_epochs=1, max_train=16, progress=False)
    r = load_mdl(run_dir)
    text = what_you_should_see_04(r)  # chance from the run's own stream
    ratio = float(r["summary"].set_index("setup").params_vs_independent["mpnas"])
    assert ("smaller" in _bullet(text, "**Size**")) == (ratio < 1)
    assert not math.isnan(ratio) and "**ABDP (softmax reading)**" in text
    assert re.search(r"(shapes \(chance 0\.25|counting \(chance 0\.33)", text) or "Every setup is more than" in text


def test_04_equal_accuracies_read_as_no_difference():
    text = what_you_should_see_04(_mdl({"mpnas": 0.393, "mpnas-uniform": 0.393 + 1e-12, "independent": 0.393}, 0.9),
                                  CHANCE)
    assert "a difference of +0.000" in _bullet(text, "**ABDP") and "-0.000" not in text


def test_03_says_when_a_knob_moves_the_source_accuracy_against_its_purpose():
    rows = [("rescl", "rescl_lambda", 0.0, 0.50), ("rescl", "rescl_lambda", 2.0, 0.70),
            ("lwf", "alpha", 0.3, 0.185), ("lwf", "alpha", 3.0, 0.118),
            ("sgd", "lr", 0.001, 0.30), ("sgd", "lr", 0.01, 0.29),
            ("feature-extraction", "lr", 0.01, 0.80)]
    curve = pd.DataFrame(rows, columns=["method", "knob", "value", "source_acc"]).assign(target_acc=0.5)
    text = what_you_should_see_03(curve.iloc[::-1])  # unsorted: the function orders by the knob
    assert "**rescl**: source accuracy 0.500 at rescl_lambda=0, 0.700 at 2: the way the knob" in text
    assert "**lwf**: source accuracy 0.185 at alpha=0.3, 0.118 at 3: **against** what the knob is for" in text
    assert "**sgd**: source accuracy 0.300 at lr=0.001, 0.290 at 0.01: within noise" in text
    assert "**feature-extraction**: one point" in text


def test_05_bn_credits_per_task_statistics_only_beyond_the_noise_margin():
    rows = [{"method": "si", "bn_stats": "shared", "forgetting": 0.35},
            {"method": "si", "bn_stats": "per-task", "forgetting": 0.05},
            {"method": "sgd", "bn_stats": "shared", "forgetting": 0.40},
            {"method": "sgd", "bn_stats": "per-task", "forgetting": 0.42},
            {"method": "lwf", "bn_stats": "shared", "forgetting": 0.30},
            {"method": "lwf", "bn_stats": "per-task", "forgetting": 0.45},
            {"method": "er", "bn_stats": "shared", "forgetting": 0.10}]  # run with one kind only: not compared
    text = what_you_should_see_05_bn(rows)
    assert "si 0.35 -> 0.05" in text and "lower the forgetting of si by more than 0.05" in text
    assert "For sgd the difference is within 0.05" in text
    assert "For lwf per-task statistics forget more" in text
    assert "er 0.10" not in text
    assert "No method was run with both" in what_you_should_see_05_bn([])


def test_05_scratch_compares_each_drop_with_sgd_from_random_weights():
    table = pd.DataFrame({"method": ["sgd (random weights)", "psp", "supsup"], "avg_accuracy": [0.4, 0.4, 0.42],
                          "task 1 when learnt": [0.36, 0.36, 0.46], "task 1 at the end": [0.34, 0.22, 0.46]})
    text = what_you_should_see_05_scratch(table, 0.15, 3)
    assert "Loses more of task 1 than sgd (random weights) (by more than 0.05): psp." in text
    assert "Within 0.05 of sgd (random weights)'s drop (one seed's noise): supsup." in text
    assert "Keeps more" not in text
    table["avg_accuracy"] = [0.16, 0.4, 0.42]  # SGD at chance: nothing to compare a drop with
    assert "than sgd" not in what_you_should_see_05_scratch(table, 0.15, 3)


def test_00_says_forgot_only_beyond_the_threshold():
    from types import SimpleNamespace

    import numpy as np

    from cl_lab.lab import what_you_should_see_00

    runs = {"sgd": SimpleNamespace(R=np.array([[0.8, np.nan], [0.5, 0.7]]), task_names=["shapes", "textures"]),
            "clr": SimpleNamespace(R=np.array([[0.6, np.nan], [0.59, 0.7]]), task_names=["shapes", "textures"])}
    text = what_you_should_see_00(runs, chance=0.1)
    assert "**sgd**, task 1 (shapes): 0.80 right after training it, 0.50 after all 2 tasks (chance 0.10): forgot 0.30" \
        in text
    assert "**clr**" in text and text.rstrip().endswith("kept it")


def test_01_counts_tasks_above_chance_and_names_the_task_lost_most():
    import numpy as np

    from cl_lab.lab import what_you_should_see_01

    R = np.array([[0.9, np.nan, np.nan], [0.5, 0.8, np.nan], [0.4, 0.78, 0.12]])
    text = what_you_should_see_01(R, ["a", "b", "c"], [0.1, 0.1, 0.1], "sgd")
    assert "2 of 3 tasks were learnt clearly above chance" in text  # 0.12 is within 0.05 of 0.1
    assert "the largest loss is on task 1 (a)" in text
    flat = np.array([[0.9, np.nan], [0.9, 0.8]])
    assert "does not lose old tasks here" in what_you_should_see_01(flat, ["a", "b"], [0.1, 0.1], "clr")


def test_07_names_a_stability_gap_only_beyond_the_dip_margin():
    from cl_lab.lab.lessons import what_you_should_see_07

    runs = pd.DataFrame([{"method": "sgd", "scenario": "class", "avg_accuracy": 0.4, "old_tasks": 0.05},
                         {"method": "er", "scenario": "class", "avg_accuracy": 0.6, "old_tasks": 0.5}])
    gap = pd.DataFrame({"task 1 learnt": [0.9, 0.9], "lowest while task 2 trains": [0.3, 0.59],
                        "after task 2": [0.6, 0.6]}, index=pd.Index(["er", "sgd"], name="method"))
    text = what_you_should_see_07(runs, 2, 0.1, gap=gap)
    assert "**Stability gap:** er drops task 1 from 0.90 to 0.30 while task 2 trains and ends that task at 0.60" in text
    assert "sgd drops" not in text  # 0.59 is within 0.02 of 0.60
    assert "no method's task-1 accuracy dips" in what_you_should_see_07(runs, 2, 0.1, gap=gap.iloc[1:])
    assert "Stability gap" not in what_you_should_see_07(runs, 2, 0.1)


def test_05_all_means_every_task_scenario_method_and_each_of_them_prepares():
    """05's report runs methods='all': a method of another scenario (iCaRL, class-IL only) there stopped `make run`."""
    from cl_lab.lab import comparison_methods
    from cl_lab.lab.params import BaselinesParams
    from cl_lab.methods import get_method
    from cl_lab.train.runner import prepare

    p = BaselinesParams(**BaselinesParams.REPORT)
    names = comparison_methods(p.methods, exclude=p.scratch_methods)
    assert "icarl" not in names and {"sgd", "clr", "er", "joint"} <= set(names)
    assert not set(p.scratch_methods) & set(names)
    assert all("task" in get_method(m).scenarios for m in names)
    for m in names:
        prepare(m, p.stream, n_tasks=p.n_tasks, epochs=p.epochs)  # raises a ConfigError where it could not run
    assert comparison_methods(["sgd", "ewc"], exclude=["sgd"]) == ["sgd", "ewc"]  # a list stays as given
