"""The notebooks' "what you should see" texts, computed from each notebook's own numbers.

One function per numbered notebook (05 has two: its main table and its from-random-weights
comparison) takes the numbers the notebook just produced and returns Markdown. A statement is
made only when those numbers support it; the thresholds are the constants below.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

FLAT = 1e-9
"""A first-task accuracy that moves less than this over the stream is flat (nothing it uses changed)."""
FALLS = 0.02
"""A first-task accuracy that ends more than this below where it started has fallen (forgetting)."""
NO_FORGETTING = 0.005
"""|forgetting| below this counts as none."""
LIKE_SGD = 0.05
"""A regulariser forgets about as much as fine-tuning when its forgetting is within this of SGD's."""
NEAR_CHANCE = 0.05
"""An accuracy below chance + this has learnt next to nothing (as 01's 'clearly above chance')."""
NOISE = 0.05
"""Mean-accuracy differences up to this are within one seed's noise (04): the README's three-seed MDL
table spreads ABDP's difference to the uniform loss over about +/- 0.05."""


def _verdict(a: Sequence[float]) -> str:
    if max(a) - min(a) < FLAT:
        return "flat: nothing it uses for task 1 changed"
    if a[-1] < a[0] - FALLS:
        return f"falls from {a[0]:.2f} to {a[-1]:.2f}"
    return f"stays near {a[0]:.2f}"


def what_you_should_see_02(acc: Any, by: str = "method") -> str:
    """First-task accuracy over the stream, one verdict per method: flat, falls (by more than ``FALLS``)
    or stays near its start. ``acc``: accuracy rows (``cl_lab.results.load``) with columns ``by``,
    ``task``, ``after_task`` and ``accuracy``."""
    lines, clr_moved = [], False
    for name, rows in acc[acc.task == 0].groupby(by, sort=False):
        a = rows.sort_values("after_task").accuracy.tolist()
        if len(a) < 2:
            continue
        lines.append(f"- **{name}**: task 1 accuracy {_verdict(a)}.")
        clr_moved |= name == "clr" and max(a) - min(a) >= FLAT
    text = ("**What you should see:** CLR's first-task line is flat (its columns never move); methods that keep "
            "updating shared weights lose task 1 to later tasks unless a penalty or a teacher holds them back.\n\n")
    if not lines:
        return text + "Only one task ran: no later task could change task 1."
    text += "\n".join(lines)
    if clr_moved:
        text += ("\n\n**CLR's first-task accuracy moved.** Its task-1 parameters are never trained again, so it "
                 "cannot: something shared changed (report it).")
    return text


def what_you_should_see_02_ablation(table: Any, margin: float = NOISE) -> str:
    """02's backbone ablation: CLR on the source-pretrained backbone against a random frozen one and one
    trained on task 1, each comparison stated only beyond ``margin``. ``table``: rows with ``backbone``
    (labels starting 'shipped', 'random', 'first-task') and ``avg_accuracy``."""
    acc = {str(b).split(" ")[0]: float(a) for b, a in zip(table["backbone"], table["avg_accuracy"])}
    if "shipped" not in acc:
        return "**What you should see in the ablation**: nothing to compare (no run on the shipped backbone)."
    lines = []
    for other, why in (("random", "the frozen features are the method's ceiling: random ones carry little"),
                       ("first-task", "a backbone trained on one task is specialised to it")):
        if other in acc:
            lines.append(f"- shipped vs {other}: average accuracy {_compare(acc['shipped'], acc[other], margin)}"
                         + (f"; {why}." if acc["shipped"] - acc[other] > margin else "."))
    return ("**What you should see in the ablation** (one seed; differences up to "
            f"{margin} are treated as noise):\n\n" + "\n".join(lines))


KNOB_RAISES_SOURCE = {"rescl": True, "lwf": True, "sgd": False}
"""Which way each trade-off knob should move the source accuracy as it grows: ResCL's decay and LwF's
distillation weight protect the source task; a larger fine-tuning learning rate moves further from it."""


def what_you_should_see_03(curve: Any, margin: float = NOISE) -> str:
    """03's sweeps: for each method, the source accuracy at the knob's lowest and highest value, and
    whether it moved the way the knob is meant to move it (beyond ``margin``), against it, or within
    noise. ``curve``: ``cl_lab.experiments.tradeoff`` rows (``method``, ``knob``, ``value``,
    ``source_acc``, ``target_acc``)."""
    lines = []
    for method, g in curve.groupby("method", sort=False):
        g = g.sort_values("value")
        if len(g) < 2:
            lines.append(f"- **{method}**: one point ({g.knob.iloc[0]}={g.value.iloc[0]:g}), no trend to read.")
            continue
        lo, hi = g.iloc[0], g.iloc[-1]
        d = hi.source_acc - lo.source_acc
        line = (f"- **{method}**: source accuracy {lo.source_acc:.3f} at {lo.knob}={lo.value:g}, {hi.source_acc:.3f} "
                f"at {hi.value:g}")
        want = KNOB_RAISES_SOURCE.get(method)
        if abs(d) <= margin:
            line += f": within noise (+/- {margin})."
        elif want is None:
            line += "."
        elif (d > 0) == want:
            line += ": the way the knob is meant to move it."
        else:
            line += (": **against** what the knob is for. At this budget (one seed, a few epochs) the knob's other "
                     "effects win: e.g. LwF distils towards a teacher that knows the source task only as well as it "
                     "was learnt, and a strong pull towards it can also slow the shared features' adaptation; "
                     "read the whole curve and the README's three-seed table before concluding.")
        lines.append(line)
    return ("**What you should see in this run** (source accuracy as each knob grows; differences up to "
            f"{margin} are treated as noise):\n\n" + "\n".join(lines))


def _names(values: Mapping[str, float] | Any, fmt: str = ".2f") -> str:
    return ", ".join(f"{m} {v:{fmt}}" for m, v in values.items())


def what_you_should_see_05(table: Any, chance: float, n_tasks: int) -> str:
    """05's main table: which methods forget nothing (|forgetting| < ``NO_FORGETTING``), the three most
    accurate and the three that forget most, the regularisers that forget about as much as SGD (within
    ``LIKE_SGD``), and the methods within ``NEAR_CHANCE`` of chance; reference rows (``reference``
    column True: joint, independent, feature extraction) are read apart, as the bounds the methods sit
    between. ``table``: one row per method with ``method``, ``avg_accuracy`` and ``forgetting``;
    ``chance``: the tasks' average chance level."""
    s = table.set_index("method")
    refs = s[s["reference"].astype(bool)] if "reference" in s else s.iloc[:0]
    s = s.drop(index=refs.index)
    kept = [m for m in s.index if abs(s.forgetting[m]) < NO_FORGETTING]
    most = s.forgetting.nlargest(3)
    sgd_note = ("" if "sgd" not in s.index else " fine-tuning (SGD) among the three that forget most," if "sgd" in
                most.index and s.forgetting["sgd"] > NO_FORGETTING else " (here fine-tuning, SGD, is not among the "
                "three that forget most),")
    text = (f"Average chance level over these {n_tasks} tasks: {chance:.2f}. "
            "**What you should see:** the methods that give each task parameters of its own forget nothing and pay "
            f"for it in storage (further right); the methods that share one trained backbone forget,{sgd_note} "
            f"In this run: forgetting 0 for {', '.join(kept) or 'none'}; highest "
            f"average accuracy {_names(s.avg_accuracy.nlargest(3))}; largest forgetting "
            f"{_names(s.forgetting.nlargest(3))}.")
    if len(refs):
        text += "\n\n**Reference rows** (not methods; the bounds the methods are read against): " + "; ".join(
            f"{m} {refs.avg_accuracy[m]:.2f}" for m in refs.index) + "."
        if "feature-extraction" in refs.index:
            floor = refs.avg_accuracy["feature-extraction"]
            below = [m for m in s.index if s.avg_accuracy[m] < floor - NEAR_CHANCE]
            if below:
                text += (f" Below feature extraction (a head on the frozen backbone, {floor:.2f}) by more than "
                         f"{NEAR_CHANCE}: {', '.join(below)}.")
        if "joint" in refs.index:
            above = [m for m in s.index if s.avg_accuracy[m] > refs.avg_accuracy["joint"] + NEAR_CHANCE]
            if above:
                text += (f" Above joint training by more than {NEAR_CHANCE}: {', '.join(above)} (joint shares one "
                         "network; methods that add parameters per task can exceed it).")
    if "sgd" in s.index:
        alike = [m for m in ("ewc", "online-ewc", "si", "lwf") if m in s.index
                 and abs(s.forgetting[m] - s.forgetting["sgd"]) <= LIKE_SGD]
        if alike:
            text += (f" Here {', '.join(alike)} forget about as much as fine-tuning ({s.forgetting['sgd']:.2f}): a "
                     "short run gives their penalties little to protect, and this is one seed; the README's baselines "
                     "table measures them at a larger budget (five tasks, four epochs, three seeds).")
    return text + _near_chance(s, chance, "At this budget these methods learn next to nothing, and their rank says "
                                          "nothing about them: give them more epochs or tasks before comparing.")


def what_you_should_see_05_scratch(table: Any, chance: float, n_tasks: int) -> str:
    """05's from-random-weights comparison: each method's drop of task 1 from when it was learnt to the
    end, and the methods within ``NEAR_CHANCE`` of chance (they learnt nothing, so have nothing to forget).
    ``table``: one row per method with ``method``, ``avg_accuracy``, ``task 1 when learnt`` and
    ``task 1 at the end``."""
    s = table.set_index("method")
    drops = s["task 1 when learnt"] - s["task 1 at the end"]
    text = (f"Chance on these {n_tasks} tasks: {chance:.2f} on average. Drop of task 1 from when it was learnt to "
            f"the end: {_names(drops, '+.3f')}.")
    # only methods that learnt something (above chance by NEAR_CHANCE) have anything to keep or lose
    learnt = [m for m in s.index if s.avg_accuracy[m] >= chance + NEAR_CHANCE and drops[m] == drops[m]]
    sgd = next((m for m in learnt if m.startswith("sgd")), None)
    if sgd is not None:
        others = [m for m in learnt if m != sgd]
        keeps = [m for m in others if drops[m] < drops[sgd] - NOISE]
        loses = [m for m in others if drops[m] > drops[sgd] + NOISE]
        if keeps:
            text += f" Keeps more of task 1 than {sgd} (by more than {NOISE}): {', '.join(keeps)}."
        if loses:
            text += f" Loses more of task 1 than {sgd} (by more than {NOISE}): {', '.join(loses)}."
        rest = [m for m in others if m not in keeps and m not in loses]
        if rest:
            text += f" Within {NOISE} of {sgd}'s drop (one seed's noise): {', '.join(rest)}."
    return text + _near_chance(s, chance, "Give them more `scratch_epochs` before reading their forgetting: a method "
                                          "that learnt nothing has nothing to forget.")


def what_you_should_see_05_bn(rows: Any, margin: float = NOISE) -> str:
    """05's BatchNorm section: for each method run with both, what per-task statistics did to its forgetting
    (lower, higher, or within ``margin``: one seed's noise). ``rows``: ``method``, ``bn_stats`` ('shared' or
    'per-task') and ``forgetting``."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if df.empty:
        return "No method was run with both kinds of BatchNorm statistics (`bn_stats_methods = []`)."
    both = df.pivot_table(index="method", columns="bn_stats", values="forgetting", aggfunc="first")
    both = both.dropna() if {"shared", "per-task"} <= set(both.columns) else both.iloc[:0]
    if both.empty:
        return "No method has a measured forgetting with both kinds of BatchNorm statistics in this run."
    lower = [m for m in both.index if both.shared[m] - both["per-task"][m] > margin]
    higher = [m for m in both.index if both["per-task"][m] - both.shared[m] > margin]
    same = [m for m in both.index if m not in lower and m not in higher]
    parts = [f"{m} {both.shared[m]:.2f} -> {both['per-task'][m]:.2f}" for m in both.index]
    text = f"**In this run** (forgetting, shared -> per-task statistics): {'; '.join(parts)}."
    if lower:
        text += (f" Per-task statistics lower the forgetting of {', '.join(lower)} by more than {margin}: part of "
                 "what those methods forgot was the statistics drifting, not the weights.")
    if same:
        text += f" For {', '.join(same)} the difference is within {margin}, one seed's noise: no effect to read here."
    if higher:
        text += (f" For {', '.join(higher)} per-task statistics forget more: statistics stored when a task ended no "
                 "longer fit weights that kept moving.")
    return text


def _near_chance(s: Any, chance: float, advice: str) -> str:
    """A paragraph naming the methods (index of ``s``) whose average accuracy is within ``NEAR_CHANCE`` of chance."""
    near = [m for m in s.index if s.avg_accuracy[m] < chance + NEAR_CHANCE]
    return f"\n\n**Within {NEAR_CHANCE} of chance: {', '.join(near)}.** {advice}" if near else ""


def _compare(a: float, b: float, margin: float) -> str:
    d = a - b
    d = d if abs(d) >= 5e-4 else 0.0  # no "-0.000"
    if d > margin:
        return f"higher by {d:.3f} ({a:.3f} vs {b:.3f})"
    if d < -margin:
        return f"lower by {-d:.3f} ({a:.3f} vs {b:.3f})"
    return f"within noise ({a:.3f} vs {b:.3f}, a difference of {d:+.3f}, inside +/- {margin})"


def domain_chance(run: Mapping[str, Any]) -> dict[str, float]:
    """Chance (1 / classes) of each domain of an MDL run (``results.load_mdl``)."""
    return _domain_chance(run)


def _domain_chance(run: Mapping[str, Any]) -> dict[str, float]:
    from ..data import load_stream

    cfg = run["config"]
    stream = load_stream(cfg["stream"], seed=cfg.get("stream_seed", 0))
    return {t.name: 1 / t.num_classes for t in stream if t.name in set(cfg["domain_names"])}


def what_you_should_see_04(run: Mapping[str, Any], chance: Mapping[str, float] | None = None,
                           margin: float = NOISE) -> str:
    """04's statements, each made only where the MDL run's numbers support it.

    ``run``: ``cl_lab.results.load_mdl(run_dir)`` (``summary``, ``results``, ``not_converged``,
    ``chance_rewards``, ``config``). ``chance``: 1 / classes per domain (default: from the run's stream).

    - convergence: the searches that did not converge and those whose reward stayed at chance, or that
      every search converged;
    - size: MPNAS is called smaller than domain-independent NAS only if ``params_vs_independent < 1``,
      larger (and by how much) if above 1;
    - accuracy: MPNAS against independent NAS, and ABDP (``mpnas``) against the uniform loss
      (``mpnas-uniform``): higher or lower only by more than ``margin``, otherwise within noise;
    - the domains on which setups end within ``NEAR_CHANCE`` of chance, with those setups;
    - the setup with the highest mean accuracy.
    """
    summary = run["summary"].set_index("setup")
    cfg = run.get("config", {})
    acc = summary.mean_accuracy
    lines = []

    threshold = cfg.get("convergence_threshold")
    above = f"above {threshold:.0%} of its start" if threshold is not None else "still high"
    if run.get("not_converged"):
        lines.append(f"**Not converged** (final entropy {above}): {', '.join(run['not_converged'])}. Their paths are "
                     "close to random draws, so the sizes and paths below compare draws, not choices.")
    elif summary.get("converged") is not None and summary.converged.notna().any():
        lines.append("Every search converged.")
    if run.get("chance_rewards"):
        lines.append(f"**Reward at chance during the search**: {', '.join(run['chance_rewards'])}. The supernet "
                     "never beat chance there, so the cost term alone chose those paths.")

    if {"mpnas", "independent"} <= set(summary.index) and "params_vs_independent" in summary:
        ratio = float(summary.params_vs_independent["mpnas"])
        n = len(cfg.get("domain_names", [])) or run["results"].domain.nunique()
        if not math.isfinite(ratio):
            lines.append("**Size**: no size ratio to independent NAS was recorded.")
        elif ratio < 1:
            lines.append(f"**Size**: MPNAS is smaller than domain-independent NAS, {ratio:.2f}x its parameters: "
                         f"sharing blocks saved {1 - ratio:.1%} (at most {1 - 1 / n:.0%} with {n} domains).")
        elif ratio > 1:
            lines.append(f"**Size**: MPNAS is larger than domain-independent NAS, {ratio:.2f}x its parameters "
                         f"({ratio - 1:.1%} more): in this run the blocks its paths chose cost more than sharing "
                         "saved, so sharing saved no parameters.")
        else:
            lines.append("**Size**: MPNAS has exactly the parameters of domain-independent NAS: sharing saved nothing.")
        lines.append(f"**Accuracy**: MPNAS against domain-independent NAS: "
                     f"{_compare(acc['mpnas'], acc['independent'], margin)}.")
    if {"mpnas", "mpnas-uniform"} <= set(summary.index):
        reading = f" ({cfg['abdp_reading']} reading)" if cfg.get("abdp_reading") else ""
        d = acc["mpnas"] - acc["mpnas-uniform"]
        verdict = ("beats the uniform loss" if d > margin else "scores below the uniform loss" if d < -margin
                   else "is not distinguishable from the uniform loss")
        lines.append(f"**ABDP{reading}** {verdict}: {_compare(acc['mpnas'], acc['mpnas-uniform'], margin)}.")

    chance = dict(chance) if chance is not None else _domain_chance(run)
    res = run["results"]
    near = []
    for domain, rows in res.groupby("domain", sort=False):
        c = chance.get(domain)
        if c is None:
            continue
        low = rows[rows.accuracy < c + NEAR_CHANCE]
        if len(low):
            if len(low) == len(rows):
                lo, hi = low.accuracy.min(), low.accuracy.max()
                who = f"every setup, {lo:.2f}" + (f" to {hi:.2f}" if f"{hi:.2f}" != f"{lo:.2f}" else "")
            else:
                who = ", ".join(f"{s} {a:.2f}" for s, a in zip(low.setup, low.accuracy))
            near.append(f"{domain} (chance {c:.2f}; {who})")
    if near:
        lines.append(f"**Within {NEAR_CHANCE} of chance**: {'; '.join(near)}. There these models learnt next to "
                     "nothing at this budget, and how they rank there says nothing about the method.")
    elif chance:
        lines.append(f"Every setup is more than {NEAR_CHANCE} above chance on every domain.")

    best = acc.idxmax()
    if isinstance(best, str) and not math.isnan(acc[best]):
        note = (" (it starts from a pretrained backbone; the searched setups train from scratch)"
                if best == "single-path" else "")
        lines.append(f"Highest mean accuracy: {best}, {acc[best]:.3f}{note}.")
    return ("**What you should see**, from this run (one seed; mean-accuracy differences up to "
            f"{margin} are treated as noise):\n\n" + "\n".join(f"- {line}" for line in lines))


STORES_DATA = ("er", "derpp", "icarl", "joint")
"""Methods that keep earlier tasks' images (a replay buffer, exemplars, or everything)."""


KEPT = 0.02
"""00: a first-task drop up to this reads as 'kept it' (a few test images' worth at one seed)."""
DIP = 0.02
"""07: a task-1 dip inside task 2 counts as a stability gap when it goes this far below where task 2 ends."""


def what_you_should_see_00(runs: Mapping[str, Any], chance: float) -> str:
    """00: for each method, task 1 right after training it and after the whole stream, and whether it
    forgot (a drop of more than ``KEPT``). ``runs``: method -> run result (``R``, ``task_names``)."""
    lines = []
    for m, r in runs.items():
        first, last = float(r.R[0, 0]), float(r.R[-1, 0])
        verdict = (f"never learnt it (within {NEAR_CHANCE:.2f} of chance), so there was nothing to keep"
                   if first < chance + NEAR_CHANCE else f"forgot {first - last:.2f}" if first - last > KEPT
                   else "kept it")
        lines.append(f"- **{m}**, task 1 ({r.task_names[0]}): {first:.2f} right after training it, {last:.2f} after "
                     f"all {len(r.task_names)} tasks (chance {chance:.2f}): {verdict}")
    return "**In this run:**\n\n" + "\n".join(lines)


def what_you_should_see_01(R: Any, task_names: Sequence[str], chances: Sequence[float], method: str) -> str:
    """01: how many tasks were learnt clearly above chance (by ``NEAR_CHANCE``) when new, and whether
    the method kept them (forgetting below 0.01) or which task it lost most of."""
    import numpy as np

    from .. import metrics as M

    R = np.asarray(R, dtype=float)
    diag, last = R.diagonal(), R[-1]
    above = sum(d > c + NEAR_CHANCE for d, c in zip(diag, chances))
    f, b = M.forgetting(R), M.bwt(R)
    lines = [f"- **Learning**: {above} of {len(diag)} tasks were learnt clearly above chance when new "
             f"(diagonal {', '.join(f'{d:.2f}' for d in diag)}; chance {', '.join(f'{c:.2f}' for c in chances)})."]
    if len(diag) > 1 and not np.isfinite(last).any():
        lines.append("- **Keeping**: the run has not finished its last task; nothing to read yet.")
    elif len(diag) > 1 and above == 0:
        lines.append(f"- **Keeping**: no task was learnt above chance, so forgetting ({f:.3f}) says nothing about "
                     f"{method} here: give it more epochs.")
    elif len(diag) > 1:
        if f < 0.01:
            lines.append(f"- **Keeping**: forgetting {f:.3f}: {method} does not lose old tasks here; its last row "
                         "equals its diagonal, because what each task learnt is stored apart from what later tasks "
                         "change.")
        else:
            worst = int(np.nanargmax(np.nanmax(R[:-1, :-1], 0) - last[:-1]))  # the largest drop from its best
            lines.append(f"- **Keeping**: forgetting {f:.3f} and BWT {b:+.3f}: later tasks overwrite what {method} "
                         f"learnt; the largest loss is on task {worst + 1} ({task_names[worst]}).")
    return "**What you should see in this run:**\n\n" + "\n".join(lines)


def stability_gap_text(gap: Any, dip: float = DIP) -> str:
    """07's stability-gap paragraph. ``gap``: one row per method (index) with ``task 1 learnt``, ``lowest
    while task 2 trains`` and ``after task 2``; a dip counts when the lowest point is more than ``dip``
    below where task 2 ends."""
    dips = gap[gap["lowest while task 2 trains"] < gap["after task 2"] - dip]
    if len(dips):
        return ("**Stability gap:** " + "; ".join(
            f"{m} drops task 1 from {r['task 1 learnt']:.2f} to {r['lowest while task 2 trains']:.2f} while task 2 "
            f"trains and ends that task at {r['after task 2']:.2f}" for m, r in dips.iterrows())
            + ": the lowest point lies inside the task, not at its end, so a per-task evaluation does not see it.")
    return (f"**Stability gap:** in this run no method's task-1 accuracy dips below where it ends task 2 by more than "
            f"{dip}; evaluate more often (`eval_every`) to look closer.")


def what_you_should_see_07(runs: Any, n_tasks: int, chance_class: float, gap: Any = None) -> str:
    """07's scenario table: per scenario, the methods that store no data against those that replay it, and
    in the class scenario how much of the old tasks each keeps. ``runs``: one row per (method, scenario)
    with ``avg_accuracy`` and ``old_tasks`` (mean final accuracy on the tasks before the last);
    ``chance_class``: chance over every class of the stream; ``gap``: the stability-gap table
    (``stability_gap_text``), when the runs evaluated at step resolution."""
    steps_gap, lines = gap, []
    for scenario, g in runs.groupby("scenario", sort=False):
        g = g.set_index("method")
        plain = g[~g.index.isin(STORES_DATA)]
        replay = g[g.index.isin(STORES_DATA)]
        line = (f"- **{scenario}**: average accuracy {_names(g.avg_accuracy)}; on the old tasks after the last one "
                f"{_names(g.old_tasks)}.")
        if len(plain) and len(replay):
            gap = replay.avg_accuracy.min() - plain.avg_accuracy.max()
            line += (f" The methods that keep data ({', '.join(replay.index)}) lead those that keep none by "
                     f"{gap:+.2f} at the least" if gap > 0 else
                     f" Keeping data does not separate the methods here (the best without data, "
                     f"{plain.avg_accuracy.idxmax()} {plain.avg_accuracy.max():.2f}, is level with or above "
                     f"{replay.avg_accuracy.idxmin()} {replay.avg_accuracy.min():.2f})") + "."
        if scenario == "class" and len(plain):
            lost = [m for m in plain.index if plain.old_tasks[m] < chance_class + NEAR_CHANCE]
            if lost:
                line += (f" Without the task id, {', '.join(lost)} keep{'s' if len(lost) == 1 else ''} next to "
                         f"nothing of the old tasks (within {NEAR_CHANCE} of chance over all classes, "
                         f"{chance_class:.2f}): the newest classes' outputs win every prediction.")
        lines.append(line)
    text = ("**What you should see:** with the task id (task-IL) every method does well, because each task is a "
            "small problem of its own; with one head and no task id (class-IL), fine-tuning and the regularisers "
            "keep almost only the last task's classes, while replay, iCaRL's exemplars and joint training keep the "
            f"old ones; domain-IL lies between. In this run ({n_tasks} tasks):\n\n" + "\n".join(lines))
    return text + ("\n\n" + stability_gap_text(steps_gap) if steps_gap is not None else "")
