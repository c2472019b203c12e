"""Multi-domain learning: MPNAS (multi-path NAS, Wang et al., WACV 2021) with ABDP, and its comparisons."""

from .controller import ABDP, PathController, Reinforce, absolute_reward
from .experiment import SETUPS, MDLConfig, jaccard_matrix, run_mdl
from .space import ZERO, MultiPathNet, SearchSpace, jaccard

__all__ = ["ABDP", "PathController", "Reinforce", "absolute_reward", "SETUPS", "MDLConfig",
           "jaccard_matrix", "run_mdl", "ZERO", "MultiPathNet", "SearchSpace", "jaccard"]
