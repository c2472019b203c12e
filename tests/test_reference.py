"""Reference rows: feature extraction, an independent network per task and joint training, run
through the runner like any method, and forward transfer against the independent network."""

import numpy as np
import pytest

import cl_lab
from cl_lab import results
from cl_lab.methods import get_method


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mini):
    out = tmp_path_factory.mktemp("ref")
    kw = {"epochs": 2, "batch_size": 16, "progress": False, "pretrained": None, "out": str(out)}
    return out, {m: cl_lab.run(m, mini, **kw) for m in ("sgd", "feature-extraction", "independent", "joint")}


def test_reference_methods_are_marked():
    assert all(get_method(m).reference for m in ("feature-extraction", "independent", "joint"))
    assert not get_method("sgd").reference and not get_method("sgd-ll").reference


def test_feature_extraction_and_independent_forget_nothing(runs):
    _, r = runs
    for m in ("feature-extraction", "independent"):
        R = r[m].R
        assert np.array_equal(R[-1], np.diag(R)), m  # each task's accuracy unchanged after it was learnt


def test_independent_stores_a_whole_network_per_task(runs):
    _, r = runs
    ind, fe = r["independent"].costs, r["feature-extraction"].costs
    assert (ind.task_params_pct > 100).all()  # the network plus its head
    assert (fe.task_params_pct < 20).all()    # a head only


def test_joint_keeps_every_task_it_has_seen(runs, mini):
    _, r = runs
    c = r["joint"].costs
    stored = [sum(t.train.x.numel() * t.train.x.element_size() + len(t.train) * 8 for t in mini.tasks[: i + 1])
              for i in range(len(mini))]
    assert c.extra_bytes.tolist() == stored


def test_forward_transfer_is_measured_against_the_independent_network(runs):
    out, r = runs
    table = results.run_table(out).set_index("method")
    ind = np.diag(r["independent"].R)
    for m in ("sgd", "joint", "feature-extraction"):
        expected = float(np.mean(np.diag(r[m].R)[1:] - ind[1:]))
        assert table.loc[m, "fwt"] == pytest.approx(expected, abs=1e-9)
    assert table.loc["independent", "fwt"] == 0.0
    means = results.seed_table(results.run_table(out))
    assert "fwt_mean" in means
    acc = results.load(out)  # each row knows its task's class count (chance lines)
    assert (acc.classes == acc.task.map(lambda t: r["sgd"].config["stream"]["tasks"][t]["classes"])).all()


def test_feature_extraction_after_the_source_task_fine_tunes_task_1_then_freezes(tmp_path, mini):
    """freeze_after=1: the first task trains the whole network (as ResCL's source task), later tasks
    only their heads; nothing is forgotten after task 1."""
    kw = {"epochs": 1, "batch_size": 16, "progress": False, "pretrained": None, "out": str(tmp_path)}
    r = cl_lab.run("feature-extraction", mini, freeze_after=1, **kw)
    frozen = cl_lab.run("feature-extraction", mini, **kw)
    assert np.array_equal(r.R[-1], np.diag(r.R))
    assert r.costs.trainable_params.iloc[0] > 10 * frozen.costs.trainable_params.iloc[0]  # task 1: the network
    assert r.costs.trainable_params.iloc[1] == frozen.costs.trainable_params.iloc[1]      # later: a head only
    assert r.R[0, 0] != frozen.R[0, 0]


def test_feature_extraction_after_the_source_task_keeps_the_method_contract(tmp_path):
    from cl_lab.train.contract import COST_CHECKS, walk

    w = walk("feature-extraction", freeze_after=1)
    for check in COST_CHECKS:
        check(w)
