"""Task-, domain- and class-incremental learning through the runner: heads, labels, refusals, iCaRL,
the streams built for the scenarios, and the textbook result (replay holds in class-IL, fine-tuning
does not)."""

import numpy as np
import pytest
import torch

import cl_lab
from cl_lab import results
from cl_lab.cli import main
from cl_lab.config import ConfigError
from cl_lab.data.incremental import for_scenario, permuted, rotated, split_by_classes
from cl_lab.data.streams import load_stream
from cl_lab.data.task import Task
from cl_lab.methods import get_method, method_names
from cl_lab.models.backbones import build_backbone
from cl_lab.rundir import read_checkpoint
from cl_lab.train import contract as C

FAST = {"epochs": 1, "progress": False}


def test_class_scenario_labels_are_global_and_the_head_grows_over_seen_classes_only(tmp_path):
    ts = load_stream("split-digits")
    glob = for_scenario(ts, "class")
    for i, t in enumerate(glob):
        assert sorted(t.test.labels().unique().tolist()) == [2 * i, 2 * i + 1]
        assert t.test.y.max() <= 1  # the task keeps its own labels underneath
    m = C.make_method("sgd", ts, scenario="class")
    x = ts[0].test.float_images()[:5]
    for i in range(3):
        m.add_task(i, 2)
        m.eval()
        assert m.predict(x, None).shape == (5, 2 * (i + 1))  # every class seen so far, no more
    # through the runner: each task stores its own 2 outputs of the one growing head
    r = cl_lab.run("sgd", "split-digits", scenario="class", n_tasks=3, out=str(tmp_path), **FAST)
    assert r.config["scenario"] == "class"
    width = build_backbone("resnet8", (3, 32, 32)).out_dim
    assert r.costs.task_params.tolist() == [2 * (width + 1)] * 3


def test_domain_scenario_shares_one_head_and_refuses_unequal_class_counts(tmp_path):
    r = cl_lab.run("sgd", "rotated-digits", scenario="domain", n_tasks=2, out=str(tmp_path / "ok"), **FAST)
    c = r.costs
    assert c.task_params.iloc[0] > 0 and c.task_params.iloc[1] == 0  # task 2 adds no head
    with pytest.raises(ConfigError, match=r"scenario='domain' needs one label space.*different class counts"):
        cl_lab.run("sgd", "synth-mini", scenario="domain", out=str(tmp_path / "bad"), **FAST)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_a_method_outside_its_scenarios_is_a_one_line_error_before_any_work(tmp_path):
    for method, scenario, pattern in [("clr", "class", r"'clr' does not run in scenario 'class' \(it needs the task id"),
                                      ("icarl", "task", r"'icarl' does not run in scenario 'task'.*runs in \['class'\]"),
                                      ("sgd", "klass", r"scenario='klass' is not allowed")]:
        with pytest.raises(ConfigError, match=pattern) as e:
            cl_lab.run(method, "split-digits", scenario=scenario, out=str(tmp_path), **FAST)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"bn_stats='per-task' picks statistics by the task id"):
        cl_lab.run("sgd", "split-digits", scenario="class", bn_stats="per-task", out=str(tmp_path), **FAST)
    assert not any(tmp_path.iterdir())
    assert main(["run", "--method", "clr", "--stream", "split-digits", "--scenario", "class", "--out",
                 str(tmp_path)]) == 2


def test_every_method_declares_its_scenarios_and_the_papers_task_id_methods_stay_task_only():
    everywhere = {"sgd", "ewc", "online-ewc", "si", "lwf", "er", "derpp", "joint"}
    for name in method_names():
        s = get_method(name).scenarios
        assert set(s) <= {"task", "domain", "class"} and s, name
        if name in everywhere:
            assert set(s) == {"task", "domain", "class"}, name
    for name in ("clr", "ccll", "efts", "rcm", "psp", "supsup", "confit", "independent"):
        assert get_method(name).scenarios == ("task",), name
    assert get_method("icarl").scenarios == ("class",)


@pytest.mark.parametrize("method", ["sgd", "lwf", "derpp", "er", "joint"])
def test_the_method_contract_holds_in_the_class_scenario(method, tmp_path):
    C.check_method(method, out=tmp_path, scenario="class")


def test_icarl_keeps_its_exemplar_budget_counts_it_and_herds(tmp_path):
    from cl_lab.methods.icarl import herding

    r = cl_lab.run("icarl", "split-digits", scenario="class", n_tasks=3, memory_size=30, out=str(tmp_path), **FAST)
    ckpt = read_checkpoint(r.run_dir / "checkpoint.pt")
    mem_y = ckpt["state"]["attributes"]["memory_y"]
    counts = np.bincount(mem_y.numpy(), minlength=6)
    assert len(mem_y) <= 30 and counts.tolist() == [30 // 6] * 6  # m = K // classes seen, for every class
    mem_x = ckpt["state"]["attributes"]["memory_x"]
    assert r.costs.extra_bytes.iloc[-1] >= mem_x.numel() * mem_x.element_size()
    assert r.costs.extra_bytes.iloc[0] > r.costs.extra_bytes.iloc[-1] * 0.9  # constant budget, not growing
    # herding: the first pick is the example nearest the mean; the chosen mean approaches the class mean
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=1)
    chosen = herding(f, 20)
    assert chosen[0] == int(((f - f.mean(0)) ** 2).sum(1).argmin()) and len(set(chosen)) == 20
    rand = torch.randperm(200, generator=g)[:20]
    assert (f[chosen].mean(0) - f.mean(0)).norm() < 0.5 * (f[rand].mean(0) - f.mean(0)).norm()


def test_in_class_il_replay_beats_fine_tuning_by_a_wide_margin(tmp_path):
    """The textbook result (van de Ven et al. 2022): without the task id, fine-tuning keeps almost only
    the last task's classes, while replay keeps old ones."""
    acc = {m: cl_lab.run(m, "split-digits", scenario="class", epochs=2, progress=False,
                         out=str(tmp_path)).summary()["avg_accuracy"] for m in ("sgd", "er")}
    assert acc["sgd"] < 0.35 and acc["er"] > acc["sgd"] + 0.3, acc


def test_results_of_different_scenarios_are_never_pooled(tmp_path):
    for scenario in ("task", "class"):
        cl_lab.run("sgd", "split-digits", scenario=scenario, n_tasks=2, out=str(tmp_path), **FAST)
    runs = results.run_table(tmp_path)
    assert sorted(runs.scenario) == ["class", "task"] and runs.config.nunique() == 2
    assert "scenario=" in " ".join(runs.config)
    table = results.seed_table(runs)
    assert len(table) == 2 and set(table.scenario) == {"class", "task"}
    assert set(results.load(tmp_path).scenario) == {"class", "task"}


def test_stream_builders_split_permute_and_rotate():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 3, 8, 8)).astype(np.uint8)
    y = np.repeat(np.arange(6), 10)
    ts = split_by_classes((x, y, x, y), 2, class_order="seeded", seed=3, name="toy")
    order = ts.meta["class_order"]
    assert sorted(order) == list(range(6)) and order != list(range(6))
    assert [t.meta["classes"] for t in ts] == [order[0:2], order[2:4], order[4:6]]
    assert all(len(t.train) + len(t.val) == 20 for t in ts)
    with pytest.raises(ValueError, match="do not split into tasks of 4"):
        split_by_classes((x, y, x, y), 4)
    base = Task.from_tensors("d", x, y, x, y)
    p = permuted(base, 3, seed=1)
    assert torch.equal(p[0].train.x, base.train.x) and not torch.equal(p[1].train.x, base.train.x)
    assert torch.equal(p[1].train.x.flatten(2).sort(2).values, base.train.x.flatten(2).sort(2).values)
    r = rotated(base, (0, 180))
    assert torch.equal(r[0].train.x, base.train.x)
    assert torch.equal(r[1].train.x, base.train.x.flip(2).flip(3))


def test_registered_scenario_streams_are_offline_and_shaped_for_their_scenario():
    for name, tasks, classes in (("split-digits", 5, 2), ("permuted-digits", 5, 10), ("rotated-digits", 5, 10),
                                 ("split-glyphs", 5, 4)):
        ts = load_stream(name)
        assert len(ts) == tasks and {t.num_classes for t in ts} == {classes}, name
        assert ts[0].image_shape == (3, 32, 32)


def test_eval_every_writes_old_task_accuracy_at_step_resolution_and_the_figure_draws_it(tmp_path):
    assert main(["run", "--method", "er", "--stream", "split-digits", "--scenario", "class", "--eval-every", "3",
                 "--epochs", "1", "--set", "n_tasks=3", "--out", str(tmp_path), "--no-progress"]) == 0
    steps = results.load_steps(tmp_path)
    acc = results.load(tmp_path)
    for i in range(3):
        g = steps[steps.task == i]
        n_steps = int(g.step.max())
        assert sorted(g.step.unique()) == sorted({0, n_steps} | set(range(3, n_steps + 1, 3)))
        assert set(g.eval_task) == set(range(i + 1))  # every task seen so far, the current one included
        # the last probe of a task is the task's final model: it agrees with the accuracy matrix on the same images
        # where the probe saw the whole split (these test splits are under eval_images=200 images)
        last = g[g.step == n_steps].set_index("eval_task").accuracy
        full = acc[acc.after_task == i].set_index("task").accuracy
        assert np.allclose(last.to_numpy(), full.loc[last.index].to_numpy())
    assert (steps.global_step.diff().fillna(0) >= 0).all()
    c = results.read_table(next(tmp_path.iterdir()), "costs.csv")
    assert (c.step_eval_seconds > 0).all()
    from cl_lab.viz import task_accuracy_over_time

    fig = task_accuracy_over_time(acc, task=0, steps=steps)
    fine = [t for t in fig.data if t.name.endswith("every step")]
    assert len(fine) == 1 and len(fine[0].x) == len(steps[steps.eval_task == 0].groupby(["task", "step"]))
    assert max(fine[0].x) == 3 and any(t.name == "chance (classes seen)" for t in fig.data)


def test_icarl_probes_during_a_task_cover_its_new_classes(tmp_path):
    """Mid-task probes (eval_every) come before the new classes have exemplar means: they read the head
    over every class seen, so the task in training can be scored right (with the previous task's means
    alone its images could only get old labels: exactly 0)."""
    r = cl_lab.run("icarl", "split-digits", scenario="class", n_tasks=2, eval_every=5, epochs=4, progress=False,
                   out=str(tmp_path))
    steps = results.load_steps(tmp_path)
    now = steps[(steps.task == 1) & (steps.eval_task == 1)]
    assert len(now) >= 4 and now.accuracy.max() > 0.2, now
    assert r.R[1, 1] > 0.5  # after the task: nearest mean of exemplars over all four classes


@pytest.mark.parametrize("method,key", [("ewc", "fishers"), ("online-ewc", "fishers"), ("si", "importance")])
def test_regularisers_protect_the_shared_head_outside_the_task_scenario(tmp_path, method, key):
    """In the domain and class scenarios every task trains the one head: its weights get importances and
    anchors like the backbone's (the class scenario's head grows a new piece per task); in the task scenario
    each head is its task's own and gets none."""
    for scenario in ("domain", "class", "task"):
        r = cl_lab.run(method, "split-digits", scenario=scenario, n_tasks=3, out=str(tmp_path / scenario), **FAST)
        extra = read_checkpoint(r.run_dir / "checkpoint.pt")["state"]["module"]["_extra_state"]
        imp = extra[key][-1] if isinstance(extra[key], list) else extra[key]
        heads = [k for k in imp if k.startswith("heads.")]
        assert bool(heads) == (scenario != "task"), (scenario, sorted(imp)[-3:])
        assert any(not k.startswith("heads.") for k in imp)  # the backbone's, in both
