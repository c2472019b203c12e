"""Small helpers shared by the method tests."""


def train_steps(method, task, task_id, steps=3, batch=16):
    """begin_task, ``steps`` observe calls on consecutive training batches, end_task."""
    method.begin_task(task_id, task)
    method.train()
    x, y = task.train.float_images(), task.train.labels()
    for s in range(steps):
        method.observe(x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch], task_id)
    method.end_task(task_id, task)
