"""Small helpers shared by the method tests."""


def train_steps(method, task, task_id, steps=3, batch=16):
    """begin_task, ``steps`` observe calls on consecutive training batches, end_task."""
    method.begin_task(task_id, task)
    method.train()
    x, y = task.train.float_images(), task.train.labels()
    for s in range(steps):
        method.observe(x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch], task_id)
    method.end_task(task_id, task)


def assert_same_after_training_both(a, b, task, task_id, probe, probe_id, seed=5):
    """Train ``a`` and ``b`` on the same task from the same seed; their logits on ``probe`` must match."""
    import torch

    from cl_lab.train.runner import seed_everything

    for m in (a, b):
        seed_everything(seed)
        train_steps(m, task, task_id)
        m.eval()
    x = probe.test.float_images()
    assert torch.equal(a.predict(x, probe_id), b.predict(x, probe_id))


def assert_restores_mid_stream(make, mini, probe_id=0):
    """Train two tasks, restore the checkpoint state into a fresh ``make()``: both predict every task
    identically, cost the same, and keep training identically on the third task. Returns the pair."""
    import copy

    import torch

    a = make()
    train_steps(a, mini[0], 0)
    train_steps(a, mini[1], 1)
    b = make()
    b.restore(copy.deepcopy(a.checkpoint_state()))
    a.eval()
    b.eval()
    for t in (0, 1):
        x = mini[t].test.float_images()
        assert torch.equal(a.predict(x, t), b.predict(x, t))
    assert a.cost() == b.cost()
    assert_same_after_training_both(a, b, mini[2], 2, mini[probe_id], probe_id)
    return a, b
