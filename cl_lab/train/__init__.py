"""The runner: training loop, evaluation, checkpoints and resume."""

from .runner import RunConfig, RunDirError, RunResult, evaluate, run, seed_everything

__all__ = ["RunConfig", "RunDirError", "RunResult", "evaluate", "run", "seed_everything"]
