"""MPNAS + ABDP: controller, search space, ABDP weights, path similarity, search and the full experiment."""

import json
import math

import pandas as pd
import pytest
import torch

from cl_lab.config import ConfigError
from cl_lab.mdl import ABDP, ZERO, MultiPathNet, PathController, Reinforce, SearchSpace, jaccard, run_mdl
from cl_lab.mdl.experiment import MDLConfig, jaccard_matrix, load_domains
from cl_lab.mdl.search import SearchSettings, search
from cl_lab.results import load_mdl
from cl_lab.rundir import RunDirError

TINY = dict(stream="synth-mini", domains="3", widths="8,16", layers_per_stage=2, kernels="3,5", expansions="2",
            stem_channels=8, search_steps=6, max_train=40, val_images=16, batch_size=16, train_epochs=1)
SPACE = SearchSpace(stem_channels=8, widths=(8, 16), layers_per_stage=2, kernels=(3, 5), expansions=(2,))


@pytest.mark.parametrize("reward,direction", [(1.0, 1), (-1.0, -1)])
def test_policy_gradient_moves_log_probability_with_the_advantage(reward, direction):
    c = PathController([3, 4, 2])
    rl = Reinforce(c, lr=0.1)
    rl.baseline = 0.0
    path = (1, 2, 0)
    before = float(c.log_prob(path).detach())
    others = float(c.log_prob((0, 0, 1)).detach())
    adv = rl.step(path, reward)
    assert adv == reward
    assert direction * (float(c.log_prob(path).detach()) - before) > 0
    assert direction * (float(c.log_prob((0, 0, 1)).detach()) - others) < 0
    assert rl.baseline == pytest.approx(0.05 * reward)  # TuNAS's baseline momentum 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_controller_converges_to_the_best_path_of_a_noisy_synthetic_reward(seed):
    """The default controller settings, on a reward whose best path is known: +0.05 per layer
    that matches it, plus Gaussian noise of 0.02 (the scale of a 300-image accuracy's noise)."""
    choices, best = [6, 7, 6, 7, 6, 7], (2, 5, 1, 0, 3, 6)
    g = torch.Generator().manual_seed(seed)
    c = PathController(choices)
    rl = Reinforce(c)
    for _ in range(400):
        path = c.sample(g)
        rl.step(path, 0.05 * sum(a == b for a, b in zip(path, best)) + 0.02 * float(torch.randn(1, generator=g)))
    assert c.most_likely() == best
    assert c.entropy() <= 0.3 * c.max_entropy()
    assert c.mean_top_probability() > 0.8


def test_a_low_entropy_without_signal_is_noise_that_seeds_do_not_agree_on():
    """Adam-normalised REINFORCE settles even on pure noise (a random walk of the logits); what
    tells noise from signal is that independent searches then disagree: with signal, every seed
    finds the best path or one layer off it; without, no two seeds find the same one."""
    choices, best = [6, 7, 6, 7, 6, 7], (2, 5, 1, 0, 3, 6)
    found = {0.0: set(), 0.05: set()}
    for signal in found:
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            c = PathController(choices)
            rl = Reinforce(c)
            for _ in range(225):
                path = c.sample(g)
                rl.step(path, signal * sum(a == b for a, b in zip(path, best))
                        + 0.02 * float(torch.randn(1, generator=g)))
            found[signal].add(c.most_likely())
    def matches(p):
        return sum(a == b for a, b in zip(p, best))

    assert all(matches(p) >= 5 for p in found[0.05]) and len(found[0.05]) <= 2
    assert len(found[0.0]) == 3 and all(matches(p) <= 3 for p in found[0.0])


def test_controller_starts_uniform_and_samples_reproducibly():
    c = PathController(SPACE.num_choices)
    assert all(torch.allclose(p, torch.full_like(p, 1 / len(p))) for p in c.probabilities())
    a = [c.sample(torch.Generator().manual_seed(3)) for _ in range(2)]
    assert a[0] == a[1]
    SPACE.check(a[0])


def test_zero_block_skips_the_layer():
    assert ZERO not in SPACE.layers[0].choices and ZERO in SPACE.layers[1].choices
    net = MultiPathNet(SPACE, [3]).eval()
    x = torch.rand(2, 3, 32, 32)
    skip = SPACE.from_names(["ib_k3_e2", ZERO, "ib_k5_e2", ZERO])
    with torch.no_grad():
        h = torch.nn.functional.relu6(net.stem_bn(net.stem((x - 0.5) / 0.25), 0))
        h = net.block(2, "ib_k5_e2")(net.block(0, "ib_k3_e2")(h, 0), 0)
        assert torch.equal(net.features(x, skip, 0), h)
        full = SPACE.from_names(["ib_k3_e2", "ib_k3_e2", "ib_k5_e2", "ib_k5_e2"])
        assert not torch.equal(net.features(x, full, 0), h)
    assert net.path_macs(skip) < net.path_macs(full)


def test_shared_blocks_are_one_module_trained_by_every_domain_using_them():
    p0 = SPACE.from_names(["ib_k3_e2", ZERO, "ib_k5_e2", ZERO])
    p1 = SPACE.from_names(["ib_k3_e2", "ib_k5_e2", "ib_k3_e2", ZERO])
    net = MultiPathNet(SPACE, [3, 2], {0: p0, 1: p1})
    shared = net.block(0, "ib_k3_e2")
    assert sorted(shared.bn1.bns) == ["0", "1"] and sorted(net.block(2, "ib_k5_e2").bn1.bns) == ["0"]
    assert set(dict(net.layers[2].items())) == {"ib_k5_e2", "ib_k3_e2"} and len(net.layers[3]) == 0
    x = torch.rand(4, 3, 32, 32)
    for d, p in ((0, p0), (1, p1)):
        net.zero_grad()
        net(x, p, d).sum().backward()
        assert shared.expand.weight.grad is not None and shared.expand.weight.grad.abs().sum() > 0
    assert sum(1 for m in net.modules() if m is shared) == 1


def test_jaccard_identical_disjoint_and_matrix():
    a = SPACE.blocks_of(SPACE.from_names(["ib_k3_e2", ZERO, "ib_k5_e2", ZERO]))
    b = SPACE.blocks_of(SPACE.from_names(["ib_k5_e2", "ib_k5_e2", "ib_k3_e2", "ib_k3_e2"]))
    assert jaccard(a, a) == 1.0 and jaccard(a, b) == 0.0
    c = SPACE.blocks_of(SPACE.from_names(["ib_k3_e2", "ib_k5_e2", "ib_k5_e2", ZERO]))
    assert jaccard(a, c) == pytest.approx(2 / 3)
    m = jaccard_matrix(SPACE, {"x": ["ib_k3_e2", ZERO, "ib_k5_e2", ZERO], "y": ["ib_k3_e2", "ib_k5_e2", "ib_k5_e2", ZERO]})
    assert m.loc["x", "x"] == 1.0 and m.loc["x", "y"] == m.loc["y", "x"] == pytest.approx(2 / 3)


def test_abdp_weights_sum_to_domain_count_and_favour_the_harder_domain():
    f = ABDP([4, 4, 4], smoothing=0.0)
    w = f.weights(torch.tensor([0.5, 2.0, 1.0]))
    assert float(w.sum()) == pytest.approx(3.0)
    assert w[1] > w[2] > w[0]
    assert torch.allclose(w, 3 * torch.softmax(torch.tensor([0.5, 2.0, 1.0]) / math.log(4), 0))
    # balanced: a chance-level loss is equally hard whatever the class count
    g = ABDP([2, 10], smoothing=0.0).weights(torch.tensor([math.log(2), math.log(10)]))
    assert torch.allclose(g, torch.ones(2))
    assert torch.equal(ABDP([2, 10], mode="uniform").weights(torch.tensor([0.1, 3.0])), torch.ones(2))
    loss, _ = ABDP([3, 3], smoothing=0.0).combine(torch.tensor([1.0, 1.0], requires_grad=True))
    assert float(loss.detach()) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="allowed"):
        ABDP([2], mode="softmax")
    with pytest.raises(ValueError, match="allowed"):
        ABDP([2], reading="focal")


def test_abdp_exp_reading_scales_each_gradient_by_exp_loss_over_w_over_w():
    losses = torch.tensor([0.5, 2.0], requires_grad=True)
    f = ABDP([4, 4], reading="exp", temperature=2.0, balanced=False)
    total, w = f.combine(losses)
    total.backward()
    expected = torch.exp(torch.tensor([0.5, 2.0]) / 2.0) / 2.0
    assert torch.allclose(losses.grad, expected) and torch.allclose(w, expected)
    # normalised, it is the softmax reading without smoothing
    n = ABDP([4, 4], reading="exp", temperature=2.0, balanced=False, normalise=True).weights(losses)
    s = ABDP([4, 4], reading="softmax", temperature=2.0, balanced=False, smoothing=0.0).weights(losses)
    assert torch.allclose(n, s) and float(n.sum()) == pytest.approx(2.0)


def test_abdp_dtp_reading_weights_the_less_accurate_domain_more():
    f = ABDP([4, 4, 4], reading="dtp", smoothing=0.0, gamma=2.0)
    w = f.weights(torch.ones(3), torch.tensor([0.9, 0.3, 0.6]))
    assert w[1] > w[2] > w[0] > 0
    k = torch.tensor([0.9, 0.3, 0.6])
    assert torch.allclose(w, (1 - k) ** 2 * -torch.log(k))
    with pytest.raises(ValueError, match="accuracy"):
        f.weights(torch.ones(3))


def test_search_is_reproducible_from_its_seed():
    cfg = MDLConfig(**TINY)
    domains = load_domains(cfg)
    s = SearchSettings(steps=6, batch_size=16, warmup_fraction=0.3)
    a, b = search(SPACE, domains, s, seed=4), search(SPACE, domains, s, seed=4)
    assert a.paths == b.paths and a.history == b.history and a.probabilities == b.probabilities
    assert len(a.history) == len(domains) * (6 - 2)
    assert search(SPACE, domains, s, seed=5).history != a.history
    assert set(a.history[0]) >= {"step", "domain", "entropy", "reward", "baseline", "top_probability"}
    assert set(a.convergence) == {d.name for d in domains}


def test_reward_signal_tells_a_chance_level_supernet_from_one_that_learnt():
    from cl_lab.mdl.search import reward_signal
    at_chance = reward_signal([0.9] * 50 + [0.52] * 10, [0.5], [300])  # only the last tenth counts
    assert at_chance["accuracy_end"] == pytest.approx(0.52) and not at_chance["accuracy_informative"]
    assert reward_signal([0.2] * 60, [0.1], [300])["accuracy_informative"]  # 0.2 is 5.8 SE above 0.1
    assert not reward_signal([], [0.1], [300])["accuracy_informative"]


def test_cost_only_control_rewards_the_cost_term_alone():
    domains = load_domains(MDLConfig(**TINY))
    s = SearchSettings(steps=5, batch_size=16, warmup_fraction=0.2, reward="cost-only", cost_beta=-0.3)
    res = search(SPACE, domains, s, seed=0)
    for h in res.history:
        assert h["reward"] == pytest.approx(-0.3 * abs(h["cost"] / res.cost_target - 1))
    with pytest.raises(ValueError, match="allowed"):
        search(SPACE, domains, SearchSettings(steps=2, reward="loss"), seed=0)


def test_macs_are_counted_per_head_width_and_bn_can_be_shared():
    path = SPACE.from_names(["ib_k3_e2", "ib_k3_e2", "ib_k5_e2", ZERO])
    net = MultiPathNet(SPACE, [2, 50])
    assert net.path_macs(path, 1) - net.path_macs(path, 0) == 48 * 16  # the head: 16 features x extra classes
    # the sum of cached parts equals a whole forward pass under the FLOP counter, supernet and phase-2 model
    from cl_lab.mdl.space import count_macs
    g = torch.Generator().manual_seed(0)
    c = PathController(SPACE.num_choices)
    paths = {d: c.sample(g) for d in (0, 1)}
    for model in (net, MultiPathNet(SPACE, [2, 50], paths)):
        for d, p in paths.items():
            assert model.path_macs(p, d) == count_macs(model, p, d)
        assert model.path_macs(paths[0], 0, image_size=64) == count_macs(model, paths[0], 0, image_size=64)
    shared = MultiPathNet(SPACE, [3, 3], {0: path, 1: path}, domain_bn=False)
    assert list(shared.block(0, "ib_k3_e2").bn1.bns) == ["shared"]
    per = MultiPathNet(SPACE, [3, 3], {0: path, 1: path})
    assert sorted(per.block(0, "ib_k3_e2").bn1.bns) == ["0", "1"]


def test_a_union_of_paths_is_never_larger_than_a_model_per_path():
    from cl_lab.models.backbones import count_params
    paths = {0: SPACE.from_names(["ib_k3_e2", ZERO, "ib_k5_e2", ZERO]),
             1: SPACE.from_names(["ib_k3_e2", "ib_k5_e2", "ib_k5_e2", "ib_k3_e2"])}
    union = count_params(MultiPathNet(SPACE, [3, 3], paths))
    alone = sum(count_params(MultiPathNet(SPACE, [3], {0: p})) for p in paths.values())
    assert union < alone


def test_run_mdl_end_to_end_writes_results_and_skips_finished_setups(tmp_path, capsys):
    run = run_mdl(out=tmp_path, progress=False, **TINY)
    r = load_mdl(run)
    assert set(r["summary"].setup) == {"mpnas", "mpnas-uniform", "independent", "single-path", "multi-head-nas"}
    assert len(r["results"]) == 5 * 3 and r["results"].accuracy.between(0, 1).all()
    s = r["summary"].set_index("setup")
    assert s.loc["independent", "params_vs_independent"] == 1.0
    assert s.saving_ceiling.tolist() == pytest.approx([2 / 3] * 5)
    assert (s.params_saving + s.params_vs_independent).tolist() == pytest.approx([1.0] * 5)
    assert r["jaccard"].shape == (3, 3) and (pd.Series(r["jaccard"].values.diagonal()) == 1.0).all()
    assert set(r["blocks"].columns) >= {"setup", "layer", "block", "domain"}
    assert "single-path" not in set(r["blocks"].setup)
    assert r["paths"]["single-path"] == {d: ["resnet8 (shipped)"] for d in ("shapes", "counting", "blood-cells")}
    hist = pd.read_csv(run / "search_history.csv")
    assert set(hist.setup) == {"mpnas", "mpnas-uniform", "independent", "multi-head-nas"}
    # six search steps cannot converge: every search says so, none silently
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["not_converged"]) == 3 + 3 + 3 + 1
    assert set(summary["chance_rewards"]) <= {f"{s}/{d}" for s in ("mpnas", "mpnas-uniform", "independent")
                                              for d in ("shapes", "counting", "blood-cells")} | {"multi-head-nas/all"}
    assert s.converged.drop("single-path").eq(False).all() and pd.isna(s.loc["single-path", "converged"])
    # rerun: every setup is skipped; the files are rewritten identically
    before = (run / "summary.csv").read_text()
    run_mdl(out=tmp_path, progress=True, **TINY)
    assert capsys.readouterr().out.count("already finished") == 5
    assert (run / "summary.csv").read_text() == before
    # another configuration in the same directory is refused, nothing touched
    cfg_before = (run / "config.json").read_text()
    with pytest.raises(RunDirError, match="search_steps"):
        run_mdl(out=tmp_path, run_name=run.name, progress=False, **{**TINY, "search_steps": 7})
    assert (run / "config.json").read_text() == cfg_before
    assert json.loads(cfg_before)["domain_names"] == ["shapes", "counting", "blood-cells"]


def test_setups_in_parallel_workers_give_the_numbers_of_a_serial_run(tmp_path):
    tiny = {**TINY, "setups": "mpnas,single-path"}
    a = run_mdl(out=tmp_path / "a", progress=False, workers=1, threads=1, **tiny)
    b = run_mdl(out=tmp_path / "b", progress=False, workers=2, threads=1, **tiny)
    assert (a / "results.csv").read_text() == (b / "results.csv").read_text()
    assert (a / "search_history.csv").read_text() == (b / "search_history.csv").read_text()
    assert json.loads((b / "config.json").read_text())["threads"] == 1
    with pytest.raises(ConfigError, match="workers"):
        run_mdl(out=tmp_path / "c", progress=False, workers=0, **tiny)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("bad,match", [
    ({"setups": "mpnas,nas"}, "unknown setups"), ({"kernels": "3,4"}, "odd"), ({"domains": "shapes,cars"}, "cars"),
    ({"domains": "9"}, "between 2"), ({"cost_beta": 0.5}, "cost_beta"), ({"widths": "a,b"}, "widths"),
    ({"abdp_reading": "focal"}, "abdp_reading"), ({"single_path_init": "imagenet"}, "single_path_init"),
    ({"stream": "nope"}, "nope"), ({"bogus": 1}, "bogus")])
def test_bad_input_is_rejected_before_any_work(bad, match, tmp_path):
    with pytest.raises((ConfigError, ValueError), match=match):
        run_mdl(out=tmp_path, progress=False, **{**TINY, **bad})
    assert not any(tmp_path.iterdir())


def test_auto_domains_are_the_streams_learnable_ones_else_its_first_five():
    """The default ``domains='auto'``: on synth-10 (and its version alias) the domains listed as learning
    from scratch at the default budget, in that order; a stream with no list gets its first tasks
    (synth-10@2: the first five, the old default; synth-mini: its three)."""
    from cl_lab.mdl.experiment import LEARNABLE_DOMAINS

    assert MDLConfig().domains == "auto" and len(LEARNABLE_DOMAINS["synth-10", 3]) >= 4
    for stream in ("synth-10", "synth-10@3"):
        assert [d.name for d in load_domains(MDLConfig(stream=stream))] == list(LEARNABLE_DOMAINS["synth-10", 3])
    assert [d.name for d in load_domains(MDLConfig(stream="synth-10@2"))] == \
        ["shapes", "textures", "scenes", "counting", "blood-cells"]
    assert len(load_domains(MDLConfig(stream="synth-mini"))) == 3
