"""``run_mdl``: MPNAS (+ABDP) and the paper's comparisons on one multi-domain set, written to a run directory.

Setups (all on the same domains, search space, search steps and training epochs):

- ``mpnas``: one controller per domain over a shared supernet, ABDP loss; phase 2 trains
  the union of the chosen paths from scratch.
- ``mpnas-uniform``: the same with a plain sum of domain losses (the ABDP ablation).
- ``independent``: domain-independent NAS, one supernet + controller per domain, one
  model per domain (size = the sum of the models).
- ``single-path``: one fixed backbone (kernel 3, largest expansion, no skips) shared by
  all domains, a head per domain.
- ``multi-head-nas``: one controller for all domains (reward: mean accuracy), one
  searched architecture shared by all domains, a head per domain.

Joint setups train with ABDP (``mpnas-uniform`` with the uniform sum), so the comparisons
differ in architecture only. Files: ``config.json``, ``results.csv`` (setup x domain:
accuracy, MACs of the domain's path, path), ``summary.csv`` (per setup: mean accuracy,
unique parameters, mean MACs, ratios to ``independent``), ``paths.json``, ``blocks.csv``
(setup, layer, block, domain: what the chosen-paths diagram draws), ``jaccard.csv``
(MPNAS path similarity), ``search_history.csv`` and ``summary.json``. Each finished setup
is saved at once (``setups/<name>.json``), so a rerun with the same config skips it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch import nn

from .. import metrics, results
from .._io import announce
from ..config import ConfigError, build, param
from ..data import load_stream
from ..data.streams import STREAMS
from ..data.task import Task
from ..models.backbones import build_backbone, count_params
from ..models.weights import checkpoint_key, load_weights, shipped_for, shipped_names
from ..registry import Registry
from ..rundir import RunDir, check_out_dir, check_run_name, default_name
from .controller import READINGS
from .search import SearchSettings, TrainSettings, domain_task, evaluate, search, train_model
from .space import SearchSpace, SharedBackboneNet


@dataclass(frozen=True)
class Setup:
    """One comparison setup: how its architecture is chosen and what it trains with."""

    search: str
    """'shared': a controller per domain over one shared supernet; 'one-controller': one controller for
    every domain (reward: mean accuracy); 'per-domain': a supernet and controller per domain, a model per
    domain; 'none': a fixed network (no search, no blocks to draw)."""
    loss: str = "abdp"
    """'abdp' or 'uniform' (a plain sum of the domain losses)."""
    reward: str = "accuracy"
    """'accuracy' (TuNAS: accuracy + cost) or 'cost-only' (a control: the cost term alone)."""
    default: bool = True
    run_order: int = 0
    """Parallel runs start the lowest first (the longest setups first, so the last to start is short)."""
    jaccard_rank: int | None = None
    """Which searched setup's paths the Jaccard matrix shows (the lowest rank present)."""


MDL_SETUPS = Registry("MDL setup")
"""The comparison setups by name; a new one registers with ``MDL_SETUPS.add(name, Setup(...))``."""
MDL_SETUPS.add("mpnas", Setup("shared", run_order=1, jaccard_rank=0))
MDL_SETUPS.add("mpnas-uniform", Setup("shared", loss="uniform", run_order=2, jaccard_rank=1))
MDL_SETUPS.add("independent", Setup("per-domain", run_order=0, jaccard_rank=2))
MDL_SETUPS.add("single-path", Setup("none", run_order=5))
MDL_SETUPS.add("multi-head-nas", Setup("one-controller", run_order=4, jaccard_rank=3))
MDL_SETUPS.add("cost-only", Setup("shared", loss="uniform", reward="cost-only", default=False, run_order=3,
                                  jaccard_rank=4))
SETUPS = tuple(MDL_SETUPS)
DEFAULT_SETUPS = tuple(n for n in MDL_SETUPS if MDL_SETUPS[n].default)
LEARNABLE_DOMAINS = {("synth-10", 3): ("textures", "scenes", "art-styles", "aerial")}
"""``domains='auto'``: per stream and generator version, the domains whose supernet reward accuracy leaves chance in every
seed (0, 1, 2) at the default budget (300 search steps, 1,200 training images, from scratch). On
synth-10 version 3 the other six do not: in the 10-domain search shapes, counting, blood-cells, glyphs
and skin-lesions stay at chance in every seed, digits in one or two of three (measured with
``benchmarks/mdl_table.py``; README, "Multi-domain learning"). A domain whose reward stays at
chance has its path chosen by the cost term alone, so the comparison with the cost-only control
would say nothing about it. Streams not listed: their first 5 tasks."""
SINGLE_PATH_INITS = ("shipped", "scratch")
SINGLE_PATH_ARCH = "resnet8"
FORMAT = 2


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"mdl: {what}={text!r} must be comma-separated integers, e.g. '3,5,7'") from None
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"mdl: {what}={text!r} must list positive integers")
    return values


@dataclass
class MDLConfig:
    stream: str = param("synth-10", "stream whose tasks are the domains")
    domains: str = param("auto", "'auto' (the stream's domains that learn from scratch at the default budget, "
                                 "LEARNABLE_DOMAINS; else its first 5), how many of its first tasks, or "
                                 "comma-separated task names")
    setups: str = param(",".join(DEFAULT_SETUPS), f"comma-separated setups from {list(SETUPS)}")
    seed: int = param(0, "seed of search, training and data subsampling", ge=0)
    stream_seed: int = param(0, "seed the embedded stream is generated with", ge=0)
    max_train: int = param(1200, "training images kept per domain", ge=8, le=1_000_000)
    val_images: int = param(300, "validation images per domain: one fixed set, scored whole for every reward", ge=8, le=1_000_000)
    stem_channels: int = param(16, "stem width", ge=1, le=4096)
    stem_stride: int = param(2, "stem stride (2 halves 32x32 inputs, as MobileNet's stem)", ge=1, le=4)
    widths: str = param("24,40,64", "stage widths; each stage halves the resolution")
    layers_per_stage: int = param(2, "searchable layers per stage", ge=1, le=32)
    kernels: str = param("3,5,7", "depthwise kernel sizes of the candidate blocks (odd)")
    expansions: str = param("2,4", "expansion ratios of the candidate blocks")
    domain_bn: bool = param(True, "one BatchNorm per domain in shared blocks (False: one shared by the domains)")
    search_steps: int = param(300, "search steps (every domain: one weight batch, then one controller update)", ge=1,
                              le=1_000_000)
    warmup_fraction: float = param(0.25, "fraction of the search with the controller learning rate at 0", ge=0, lt=1)
    batch_size: int = param(32, "training batch size per domain", ge=1, le=65_536)
    weight_lr: float = param(0.05, "supernet SGD learning rate (cosine decay)", gt=0, le=10)
    controller_lr: float = param(0.2, "controller Adam learning rate (beta1 = 0, as TuNAS)", gt=0, le=10)
    baseline_momentum: float = param(0.95, "moving-average reward baseline momentum (TuNAS: 0.95)", ge=0, lt=1)
    cost_beta: float = param(-0.1, "TuNAS absolute reward weight (must be < 0; TuNAS: -0.1)", lt=0)
    cost_target_ratio: float = param(0.5, "cost target as a fraction of the largest path's cost", gt=0)
    cost_kind: str = param("macs", "'macs' or 'params'")
    convergence_threshold: float = param(0.3, "a search has converged when its final entropy is at most this "
                                              "fraction of its start", gt=0, lt=1)
    abdp_reading: str = param("softmax", f"which reading of ABDP: {list(READINGS)} (see the README)")
    abdp_temperature: float = param(1.0, "ABDP temperature (softmax and exp readings)", gt=0)
    abdp_smoothing: float = param(0.9, "moving-average factor of ABDP's hardness / running accuracy", ge=0, lt=1)
    abdp_gamma: float = param(2.0, "focusing exponent of the dtp reading", ge=0)
    abdp_normalise: bool = param(False, "rescale ABDP weights to sum to the number of domains")
    train_epochs: int = param(5, "phase-2 epochs (over the largest domain)", ge=1, le=1000)
    train_lr: float = param(0.05, "phase-2 SGD learning rate (cosine decay)", gt=0, le=10)
    single_path_init: str = param("shipped", "single-path backbone start: 'shipped' (the default shipped ResNet-8, as "
                                             "the paper's pretrained backbone), a shipped checkpoint's name or 'scratch'")

    def validate(self) -> None:
        for key in ("widths", "kernels", "expansions"):
            _ints(getattr(self, key), key)
        if any(k % 2 == 0 for k in _ints(self.kernels, "kernels")):
            raise ConfigError(f"mdl: kernels={self.kernels!r} must be odd")
        if self.cost_kind not in ("macs", "params"):
            raise ConfigError(f"mdl: cost_kind={self.cost_kind!r} is not allowed; choose one of ['macs', 'params']")
        if self.abdp_reading not in READINGS:
            raise ConfigError(f"mdl: abdp_reading={self.abdp_reading!r} is not allowed; choose one of {list(READINGS)}")
        if self.single_path_init not in SINGLE_PATH_INITS and checkpoint_key(self.single_path_init) is None:
            raise ConfigError(f"mdl: single_path_init={self.single_path_init!r} is not allowed; choose one of "
                              f"{[*SINGLE_PATH_INITS, *shipped_names()]}")
        bad = [s for s in self.setup_list() if s not in SETUPS]
        if bad or not self.setup_list():
            raise ConfigError(f"mdl: unknown setups {bad}; allowed: {list(SETUPS)}")

    def setup_list(self) -> list[str]:
        return [s.strip() for s in self.setups.split(",") if s.strip()]

    def space(self) -> SearchSpace:
        return SearchSpace(stem_channels=self.stem_channels, stem_stride=self.stem_stride,
                           widths=_ints(self.widths, "widths"), layers_per_stage=self.layers_per_stage,
                           kernels=_ints(self.kernels, "kernels"), expansions=_ints(self.expansions, "expansions"))

    def abdp(self) -> dict:
        return {"reading": self.abdp_reading, "temperature": self.abdp_temperature, "smoothing": self.abdp_smoothing,
                "gamma": self.abdp_gamma, "normalise": self.abdp_normalise}

    def search_settings(self, loss: str, reward: str = "accuracy") -> SearchSettings:
        return SearchSettings(
            steps=self.search_steps, warmup_fraction=self.warmup_fraction, batch_size=self.batch_size,
            weight_lr=self.weight_lr, controller_lr=self.controller_lr, baseline_momentum=self.baseline_momentum,
            cost_beta=self.cost_beta, cost_target_ratio=self.cost_target_ratio, cost_kind=self.cost_kind,
            reward=reward, loss=loss, abdp=self.abdp(), domain_bn=self.domain_bn,
            convergence_threshold=self.convergence_threshold)

    def train_settings(self, loss: str) -> TrainSettings:
        return TrainSettings(epochs=self.train_epochs, batch_size=self.batch_size, lr=self.train_lr, loss=loss,
                             abdp=self.abdp(), domain_bn=self.domain_bn)


def load_domains(cfg: MDLConfig) -> list[Task]:
    stream = load_stream(cfg.stream, seed=cfg.stream_seed)
    names = [t.name for t in stream]
    spec = cfg.domains.strip()
    if spec == "auto":
        key = (STREAMS.canonical(cfg.stream), STREAMS.info(cfg.stream).get("version")) if cfg.stream in STREAMS \
            else (cfg.stream, None)
        learnable = [n for n in LEARNABLE_DOMAINS.get(key, ()) if n in names]
        spec = ",".join(learnable) if len(learnable) >= 2 else str(min(5, len(stream)))
    if spec.isdigit():
        k = int(spec)
        if not 2 <= k <= len(stream):
            raise ConfigError(f"mdl: domains={spec} must be between 2 and {len(stream)} for stream {cfg.stream!r}")
        tasks = list(stream)[:k]
    else:
        wanted = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown or len(wanted) < 2 or len(set(wanted)) != len(wanted):
            raise ConfigError(f"mdl: domains={spec!r} must name at least two distinct tasks of {cfg.stream!r}; "
                              f"unknown {unknown}; allowed: {names}")
        tasks = [stream[names.index(w)] for w in wanted]
    return [domain_task(t, cfg.max_train, cfg.seed + i, cfg.val_images) for i, t in enumerate(tasks)]


def _model_row(net: nn.Module, paths: dict[int, tuple], accs: dict[int, float]) -> dict[int, dict]:
    return {d: {"accuracy": accs[d], "macs": net.path_macs(paths[d], d)} for d in paths}


def _single_path_weights(cfg: MDLConfig) -> str | None:
    """The shipped checkpoint the single-path backbone starts from (None: from scratch), as the run records
    it: 'shipped' becomes the default checkpoint's name, any other name stays as given (an alias included,
    so runs made before a checkpoint was renamed keep their directories)."""
    if cfg.single_path_init == "scratch":
        return None
    name = shipped_for(cfg.single_path_init, SINGLE_PATH_ARCH)
    return name if cfg.single_path_init == "shipped" else cfg.single_path_init


def _single_path_net(cfg: MDLConfig, domains: list[Task]) -> SharedBackboneNet:
    backbone = build_backbone(SINGLE_PATH_ARCH)
    weights = _single_path_weights(cfg)
    if weights is not None:
        load_weights(backbone, weights)
    return SharedBackboneNet(backbone, backbone.out_dim, [d.num_classes for d in domains])


def _run_setup(name: str, cfg: MDLConfig, space: SearchSpace, domains: list[Task],
               log: Callable[[str], None]) -> dict[str, Any]:
    n = len(domains)
    setup = MDL_SETUPS[name]
    loss = setup.loss
    history: list[dict] = []
    convergence: dict[str, dict] = {}
    t0 = time.perf_counter()
    if setup.search == "per-domain":
        paths, per_domain, params = {}, {}, 0
        for d, dom in enumerate(domains):
            res = search(space, [dom], cfg.search_settings(loss, setup.reward), cfg.seed + 101 * d)
            history += [{**h, "domain": dom.name} for h in res.history]
            convergence[dom.name] = res.convergence[dom.name]
            paths[d] = res.paths[0]
            net = train_model(space, [dom], {0: paths[d]}, cfg.train_settings(loss), cfg.seed + 101 * d)
            per_domain[d] = _model_row(net, {0: paths[d]}, evaluate(net, [dom], {0: paths[d]}))[0]
            params += count_params(net)
            log(f"  {name}: {dom.name} {per_domain[d]['accuracy']:.3f}")
    else:
        net = None
        if setup.search == "none":
            paths = {d: space.reference_path() for d in range(n)}
            torch.manual_seed(cfg.seed)
            net = _single_path_net(cfg, domains)
        else:
            res = search(space, domains, cfg.search_settings(loss, setup.reward), cfg.seed,
                         shared_controller=setup.search == "one-controller")
            history, convergence, paths = res.history, res.convergence, res.paths
        net = train_model(space, domains, paths, cfg.train_settings(loss), cfg.seed, net=net)
        per_domain = _model_row(net, paths, evaluate(net, domains, paths))
        params = count_params(net)
    if setup.search == "none":
        names = {domains[d].name: [f"resnet8 ({cfg.single_path_init})"] for d in paths}
    else:
        names = {domains[d].name: space.names(p) for d, p in paths.items()}
    return {
        "setup": name,
        "paths": names,
        "domains": {domains[d].name: r for d, r in per_domain.items()},
        "unique_params": params,
        "seconds": time.perf_counter() - t0,
        "convergence": convergence,
        "history": history,
    }


def jaccard_matrix(space: SearchSpace, paths: dict[str, list[str]]) -> pd.DataFrame:
    """Domain x domain Jaccard similarity of the chosen blocks (|shared| / |union|)."""
    return metrics.jaccard_matrix({d: space.blocks_of(space.from_names(p)) for d, p in paths.items()})


def block_table(space: SearchSpace, setups: list[dict]) -> pd.DataFrame:
    """Long form (setup, layer, block, domain) of every chosen non-zero block: the chosen-paths diagram."""
    rows = []
    for s in setups:
        if MDL_SETUPS[s["setup"]].search == "none":  # a fixed network outside the search space: no blocks to draw
            continue
        for dom, names in s["paths"].items():
            for i, (layer, n) in enumerate(zip(space.layers, names)):
                rows.append({"setup": s["setup"], "layer_index": i, "layer": layer.name, "block": n, "domain": dom})
    return pd.DataFrame(rows)


def summarise(setups: list[dict]) -> pd.DataFrame:
    """One row per setup: mean accuracy, unique parameters, mean MACs per path, the search's
    convergence (worst controller's final / start entropy; empty for single-path, which does
    not search) and, when ``independent`` ran, the ratios to it next to the sharing ceiling:
    with D domains, sharing can save at most ``1 - 1/D`` of domain-independent models' size."""
    rows = []
    for s in setups:
        accs = [r["accuracy"] for r in s["domains"].values()]
        macs = [r["macs"] for r in s["domains"].values()]
        conv = list(s.get("convergence", {}).values())
        rows.append({"setup": s["setup"], "mean_accuracy": sum(accs) / len(accs), "unique_params": s["unique_params"],
                     "mean_macs": sum(macs) / len(macs), "seconds": s["seconds"],
                     "entropy_ratio": max((c["entropy_ratio"] for c in conv), default=float("nan")),
                     "converged": all(c["converged"] for c in conv) if conv else None})
    df = pd.DataFrame(rows)
    ref = df[df.setup == "independent"]
    if len(ref):
        df["params_vs_independent"] = df.unique_params / float(ref.unique_params.iloc[0])
        df["macs_vs_independent"] = df.mean_macs / float(ref.mean_macs.iloc[0])
        n = len(setups[0]["domains"])
        df["params_saving"] = 1 - df.params_vs_independent
        df["saving_ceiling"] = 1 - 1 / n
    return df


def chance_rewards(setups: list[dict]) -> list[str]:
    """'setup/controller' for every search whose reward accuracy ended at chance level (its path
    was chosen by the cost term alone; see ``search.reward_signal``). Never the cost-only control."""
    return [f"{s['setup']}/{who}" for s in setups if MDL_SETUPS[s["setup"]].reward == "accuracy"
            for who, c in s.get("convergence", {}).items() if c.get("accuracy_informative") is False]


def not_converged(setups: list[dict]) -> list[str]:
    """'setup/controller' for every search whose final entropy is above the threshold of its start."""
    return [f"{s['setup']}/{who}" for s in setups for who, c in s.get("convergence", {}).items() if not c["converged"]]


def run_mdl(out: str | Path = "runs", run_name: str | None = None, progress: bool = True,
            workers: int = 1, threads: int | None = None, loggers: Sequence[str] = (),
            tracking_uri: str | None = None, experiment: str = "cl_lab", **values: Any) -> Path:
    """Run the configured setups and write the run directory; returns its path.

    Everything is validated (config, stream, domains) before any training starts.
    ``workers > 1`` runs that many setups at once in spawned processes with ``threads`` torch
    threads each (default: this process's count divided among the workers); every setup
    seeds itself, so a setup's numbers do not depend on ``workers``, only on ``threads``
    (recorded in ``config.json``). ``loggers`` (``cl_lab.tracking``) also send the finished run to
    TensorBoard, MLflow or W&B (``tracking.log_mdl``).
    """
    from ..parallel import check_executor
    from ..tracking import check_trackers

    check_executor("local", workers, "mdl", threads=threads)
    loggers = check_trackers(loggers, "mdl")
    cfg = build(MDLConfig, values, where="mdl")
    domains = load_domains(cfg)
    space = cfg.space()
    config = {"format": FORMAT, **dataclasses.asdict(cfg), "domain_names": [d.name for d in domains],
              # which shipped checkpoint 'shipped' meant: runs from two shipped backbones are two configurations
              "single_path_weights": _single_path_weights(cfg)}
    if run_name is not None:
        check_run_name(run_name, "mdl")
    out = Path(out).expanduser()
    check_out_dir(out)
    name = run_name or default_name(f"{cfg.stream}-mdl-seed{cfg.seed}", config)
    if threads is None:
        threads = max(1, torch.get_num_threads() // workers)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # what config.json records, and what each worker uses
    try:
        with RunDir(out / name, config, what="MDL run") as rd:
            run_dir = _run_setups(rd, cfg, space, domains, progress, workers, threads)
        if loggers:
            from ..tracking import log_mdl, warn

            try:
                log_mdl(run_dir, loggers, out=out, uri=tracking_uri, experiment=experiment)
            except Exception as e:  # noqa: BLE001 - the finished run directory is the record
                warn(f"the MDL run was not sent ({type(e).__name__}: {str(e).strip()[:200]}); its run directory is "
                     f"the record: cl_lab.tracking.log_mdl can send it later")
        return run_dir
    finally:
        torch.set_num_threads(previous)


def _setup_in_worker(name: str, values: dict, threads: int) -> dict[str, Any]:
    """One setup in a spawned process: rebuild the configuration and domains (from the stream cache)."""
    torch.set_num_threads(threads)
    cfg = build(MDLConfig, values, where="mdl")
    return _run_setup(name, cfg, cfg.space(), load_domains(cfg), lambda _m: None)


def _setup_job(job: tuple) -> dict[str, Any]:
    return _setup_in_worker(*job)


def _setup_here(job: tuple) -> dict[str, Any]:
    name, cfg, space, domains, log = job
    log(f"{name}: searching and training on {len(domains)} domains")
    return _run_setup(name, cfg, space, domains, log)


def _run_setups(rd: RunDir, cfg: MDLConfig, space: SearchSpace, domains: list[Task], progress: bool,
                workers: int = 1, threads: int = 1) -> Path:
    run_dir = rd.path
    log = print if progress else (lambda _m: None)
    finished: dict[str, dict] = {}
    todo = []
    for name in cfg.setup_list():
        try:
            saved = results.read_mdl_setup(run_dir, name)
        except ValueError:
            saved = None
            log(f"{name}: saved result unreadable, running it again")
        if saved is not None:
            finished[name] = saved
            log(f"{name}: already finished, skipped")
            continue
        todo.append(name)

    def save(name: str, result: dict) -> None:
        results.write_mdl_setup(rd, name, result)
        finished[name] = result
        announce(f"MDL setup {name}: mean accuracy {sum(r['accuracy'] for r in result['domains'].values()) / len(domains):.3f}"
                 f" ({result['seconds']:.0f} s)")
        log(f"{name}: mean accuracy {sum(r['accuracy'] for r in result['domains'].values()) / len(domains):.3f}, "
            f"{result['unique_params']:,} parameters, {result['seconds']:.0f} s")
        for who in not_converged([result]):
            c = result["convergence"][who.split("/", 1)[1]]
            log(f"  NOT CONVERGED: {who} ends at {c['entropy_ratio']:.0%} of its starting entropy "
                f"(threshold {cfg.convergence_threshold:.0%}); its path is close to a random draw")
        for who in chance_rewards([result]):
            c = result["convergence"][who.split("/", 1)[1]]
            log(f"  CHANCE-LEVEL REWARD: {who} ends at accuracy {c['accuracy_end']:.3f} (chance {c['chance']:.3f}); "
                "the supernet has not learnt it, so the cost term chose its path")

    from ..parallel import PointsFailed, run_points

    if todo:
        rd.training()

    if workers > 1 and len(todo) > 1:
        log(f"running {len(todo)} setups on {min(workers, len(todo))} workers x {threads} thread(s)")
        # the longest setups first, so the last one to start is short
        todo = sorted(todo, key=lambda n: MDL_SETUPS[n].run_order)
        values = dataclasses.asdict(cfg)
        jobs = [(n, values, threads) for n in todo]
        fn, job_workers = _setup_job, min(workers, len(todo))
    else:
        jobs = [(n, cfg, space, domains, log) for n in todo]
        fn, job_workers = _setup_here, 1
    failures: list[str] = []

    def collect(result: dict) -> None:
        if "error" in result:
            failures.append(f"{result['setup']}: {result['error']}")
            log(f"{result['setup']}: FAILED: {result['error']}")
        else:
            save(result["setup"], result)

    run_points(fn, jobs, failed=lambda job, error: {"setup": job[0], "error": error}, workers=job_workers,
               on_result=collect)
    if failures:
        raise PointsFailed(f"mdl: {len(failures)} setup(s) failed ({'; '.join(failures)}); the finished ones are "
                           f"saved in {run_dir}/setups and a rerun skips them")
    _write_tables(rd, space, [finished[n] for n in cfg.setup_list()])
    return run_dir


def _write_tables(rd: RunDir, space: SearchSpace, done: list[dict]) -> None:
    rows = [{"setup": s["setup"], "domain": d, "accuracy": r["accuracy"], "macs": r["macs"],
             "path": " ".join(s["paths"][d])} for s in done for d, r in s["domains"].items()]
    searched = [s for s in done if MDL_SETUPS[s["setup"]].jaccard_rank is not None]
    main = min(searched, key=lambda s: MDL_SETUPS[s["setup"]].jaccard_rank) if searched else None
    results.write_mdl(
        rd, results=rows, summary=summarise(done), paths={s["setup"]: s["paths"] for s in done},
        blocks=block_table(space, done), history=[{"setup": s["setup"], **h} for s in done for h in s["history"]],
        jaccard=jaccard_matrix(space, main["paths"]) if main else pd.DataFrame(),
        info={"jaccard_setup": main["setup"] if main else None, "not_converged": not_converged(done),
              "chance_rewards": chance_rewards(done),
              "convergence": {s["setup"]: s["convergence"] for s in done if s.get("convergence")}})
