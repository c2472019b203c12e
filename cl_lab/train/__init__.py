"""The runner: stream x method -> accuracy matrix, costs and a resumable run directory."""

from ..rundir import RunDirError
from .runner import RunConfig, RunResult, TrainingDiverged, evaluate, run, seed_everything

__all__ = ["RunConfig", "RunDirError", "RunResult", "TrainingDiverged", "evaluate", "run", "seed_everything"]
