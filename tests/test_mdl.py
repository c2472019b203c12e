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
            stem_channels=8, search_steps=6, max_train=40, val_batch_size=16, batch_size=16, train_epochs=1)
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
    assert rl.baseline == pytest.approx(0.1 * reward)


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


def test_search_is_reproducible_from_its_seed():
    cfg = MDLConfig(**TINY)
    domains = load_domains(cfg)
    s = SearchSettings(steps=6, batch_size=16, val_batch_size=16, warmup_fraction=0.3)
    a, b = search(SPACE, domains, s, seed=4), search(SPACE, domains, s, seed=4)
    assert a.paths == b.paths and a.history == b.history and a.probabilities == b.probabilities
    assert len(a.history) == len(domains) * (6 - 2)
    assert search(SPACE, domains, s, seed=5).history != a.history


def test_run_mdl_end_to_end_writes_results_and_skips_finished_setups(tmp_path, capsys):
    run = run_mdl(out=tmp_path, progress=False, **TINY)
    r = load_mdl(run)
    assert set(r["summary"].setup) == {"mpnas", "mpnas-uniform", "independent", "single-path", "multi-head-nas"}
    assert len(r["results"]) == 5 * 3 and r["results"].accuracy.between(0, 1).all()
    s = r["summary"].set_index("setup")
    assert s.loc["independent", "params_vs_independent"] == 1.0
    # a shared model is never larger than one model per domain on the same space
    assert s.loc["single-path", "unique_params"] < s.loc["independent", "unique_params"]
    assert r["jaccard"].shape == (3, 3) and (pd.Series(r["jaccard"].values.diagonal()) == 1.0).all()
    assert set(r["blocks"].columns) >= {"setup", "layer", "block", "domain"}
    single = r["paths"]["single-path"]
    assert len({tuple(p) for p in single.values()}) == 1
    hist = pd.read_csv(run / "search_history.csv")
    assert set(hist.setup) == {"mpnas", "mpnas-uniform", "independent", "multi-head-nas"}
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


@pytest.mark.parametrize("bad,match", [
    ({"setups": "mpnas,nas"}, "unknown setups"), ({"kernels": "3,4"}, "odd"), ({"domains": "shapes,cars"}, "cars"),
    ({"domains": "9"}, "between 2"), ({"cost_beta": 0.5}, "cost_beta"), ({"widths": "a,b"}, "widths"),
    ({"stream": "nope"}, "nope"), ({"bogus": 1}, "bogus")])
def test_bad_input_is_rejected_before_any_work(bad, match, tmp_path):
    with pytest.raises((ConfigError, ValueError), match=match):
        run_mdl(out=tmp_path, progress=False, **{**TINY, **bad})
    assert not any(tmp_path.iterdir())
