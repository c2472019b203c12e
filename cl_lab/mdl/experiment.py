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
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .. import metrics
from ..config import ConfigError, build, param
from ..data import load_stream
from ..data.task import Task
from ..models.backbones import count_params
from ..rundir import RunDir, check_out_dir, check_run_name, default_name
from .search import SearchSettings, TrainSettings, domain_task, evaluate, search, train_model
from .space import MultiPathNet, SearchSpace

SETUPS = ("mpnas", "mpnas-uniform", "independent", "single-path", "multi-head-nas")
FORMAT = 1


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
    domains: str = param("5", "how many of the stream's first tasks, or comma-separated task names")
    setups: str = param(",".join(SETUPS), f"comma-separated setups from {list(SETUPS)}")
    seed: int = param(0, "seed of search, training and data subsampling", ge=0)
    stream_seed: int = param(0, "seed the embedded stream is generated with", ge=0)
    max_train: int = param(1200, "training images kept per domain", ge=8)
    stem_channels: int = param(16, "stem width", ge=1)
    stem_stride: int = param(2, "stem stride (2 halves 32x32 inputs, as MobileNet's stem)", ge=1, le=4)
    widths: str = param("24,40,64", "stage widths; each stage halves the resolution")
    layers_per_stage: int = param(2, "searchable layers per stage", ge=1)
    kernels: str = param("3,5,7", "depthwise kernel sizes of the candidate blocks (odd)")
    expansions: str = param("2,4", "expansion ratios of the candidate blocks")
    search_steps: int = param(80, "search steps (every domain: one weight batch, one controller update)", ge=1)
    warmup_fraction: float = param(0.25, "fraction of the search that trains shared weights only", ge=0, lt=1)
    batch_size: int = param(32, "training batch size per domain", ge=1)
    val_batch_size: int = param(64, "validation images per controller reward", ge=1)
    weight_lr: float = param(0.05, "supernet SGD learning rate (cosine decay)", gt=0)
    controller_lr: float = param(0.05, "controller Adam learning rate", gt=0)
    baseline_momentum: float = param(0.9, "moving-average baseline momentum", ge=0, lt=1)
    cost_beta: float = param(-0.5, "TuNAS absolute reward weight (must be < 0)", lt=0)
    cost_target_ratio: float = param(0.5, "cost target as a fraction of the largest path's cost", gt=0)
    cost_kind: str = param("macs", "'macs' or 'params'")
    abdp_temperature: float = param(1.0, "ABDP softmax temperature", gt=0)
    abdp_smoothing: float = param(0.9, "ABDP hardness moving-average factor", ge=0, lt=1)
    train_epochs: int = param(5, "phase-2 epochs (over the largest domain)", ge=1)
    train_lr: float = param(0.05, "phase-2 SGD learning rate (cosine decay)", gt=0)

    def validate(self) -> None:
        for key in ("widths", "kernels", "expansions"):
            _ints(getattr(self, key), key)
        if any(k % 2 == 0 for k in _ints(self.kernels, "kernels")):
            raise ConfigError(f"mdl: kernels={self.kernels!r} must be odd")
        if self.cost_kind not in ("macs", "params"):
            raise ConfigError(f"mdl: cost_kind={self.cost_kind!r} is not allowed; choose one of ['macs', 'params']")
        bad = [s for s in self.setup_list() if s not in SETUPS]
        if bad or not self.setup_list():
            raise ConfigError(f"mdl: unknown setups {bad}; allowed: {list(SETUPS)}")

    def setup_list(self) -> list[str]:
        return [s.strip() for s in self.setups.split(",") if s.strip()]

    def space(self) -> SearchSpace:
        return SearchSpace(stem_channels=self.stem_channels, stem_stride=self.stem_stride,
                           widths=_ints(self.widths, "widths"), layers_per_stage=self.layers_per_stage,
                           kernels=_ints(self.kernels, "kernels"), expansions=_ints(self.expansions, "expansions"))

    def search_settings(self, loss: str) -> SearchSettings:
        return SearchSettings(
            steps=self.search_steps, warmup_fraction=self.warmup_fraction, batch_size=self.batch_size,
            val_batch_size=self.val_batch_size, weight_lr=self.weight_lr, controller_lr=self.controller_lr,
            baseline_momentum=self.baseline_momentum, cost_beta=self.cost_beta,
            cost_target_ratio=self.cost_target_ratio, cost_kind=self.cost_kind, loss=loss,
            abdp_temperature=self.abdp_temperature, abdp_smoothing=self.abdp_smoothing)

    def train_settings(self, loss: str) -> TrainSettings:
        return TrainSettings(epochs=self.train_epochs, batch_size=self.batch_size, lr=self.train_lr, loss=loss,
                             abdp_temperature=self.abdp_temperature, abdp_smoothing=self.abdp_smoothing)


def load_domains(cfg: MDLConfig) -> list[Task]:
    stream = load_stream(cfg.stream, seed=cfg.stream_seed)
    names = [t.name for t in stream]
    spec = cfg.domains.strip()
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
    return [domain_task(t, cfg.max_train, cfg.seed + i) for i, t in enumerate(tasks)]


def _model_row(net: MultiPathNet, paths: dict[int, tuple], accs: dict[int, float]) -> dict[int, dict]:
    return {d: {"accuracy": accs[d], "macs": net.path_macs(paths[d], d)} for d in paths}


def _run_setup(name: str, cfg: MDLConfig, space: SearchSpace, domains: list[Task],
               log: Callable[[str], None]) -> dict[str, Any]:
    n = len(domains)
    loss = "uniform" if name == "mpnas-uniform" else "abdp"
    history: list[dict] = []
    t0 = time.perf_counter()
    if name == "independent":
        paths, per_domain, params = {}, {}, 0
        for d, dom in enumerate(domains):
            res = search(space, [dom], cfg.search_settings(loss), cfg.seed + 101 * d)
            history += [{**h, "domain": dom.name} for h in res.history]
            paths[d] = res.paths[0]
            net = train_model(space, [dom], {0: paths[d]}, cfg.train_settings(loss), cfg.seed + 101 * d)
            per_domain[d] = _model_row(net, {0: paths[d]}, evaluate(net, [dom], {0: paths[d]}))[0]
            params += count_params(net)
            log(f"  independent: {dom.name} {per_domain[d]['accuracy']:.3f}")
    else:
        if name == "single-path":
            paths = {d: space.reference_path() for d in range(n)}
        else:
            res = search(space, domains, cfg.search_settings(loss), cfg.seed, shared_controller=name == "multi-head-nas")
            history = res.history
            paths = res.paths
        net = train_model(space, domains, paths, cfg.train_settings(loss), cfg.seed)
        per_domain = _model_row(net, paths, evaluate(net, domains, paths))
        params = count_params(net)
    return {
        "setup": name,
        "paths": {domains[d].name: space.names(p) for d, p in paths.items()},
        "domains": {domains[d].name: r for d, r in per_domain.items()},
        "unique_params": params,
        "seconds": time.perf_counter() - t0,
        "history": history,
    }


def jaccard_matrix(space: SearchSpace, paths: dict[str, list[str]]) -> pd.DataFrame:
    """Domain x domain Jaccard similarity of the chosen blocks (|shared| / |union|)."""
    return metrics.jaccard_matrix({d: space.blocks_of(space.from_names(p)) for d, p in paths.items()})


def block_table(space: SearchSpace, setups: list[dict]) -> pd.DataFrame:
    """Long form (setup, layer, block, domain) of every chosen non-zero block: the chosen-paths diagram."""
    rows = []
    for s in setups:
        for dom, names in s["paths"].items():
            for i, (layer, n) in enumerate(zip(space.layers, names)):
                rows.append({"setup": s["setup"], "layer_index": i, "layer": layer.name, "block": n, "domain": dom})
    return pd.DataFrame(rows)


def summarise(setups: list[dict]) -> pd.DataFrame:
    rows = []
    for s in setups:
        accs = [r["accuracy"] for r in s["domains"].values()]
        macs = [r["macs"] for r in s["domains"].values()]
        rows.append({"setup": s["setup"], "mean_accuracy": sum(accs) / len(accs), "unique_params": s["unique_params"],
                     "mean_macs": sum(macs) / len(macs), "seconds": s["seconds"]})
    df = pd.DataFrame(rows)
    ref = df[df.setup == "independent"]
    if len(ref):
        df["params_vs_independent"] = df.unique_params / float(ref.unique_params.iloc[0])
        df["macs_vs_independent"] = df.mean_macs / float(ref.mean_macs.iloc[0])
    return df


def run_mdl(out: str | Path = "runs", run_name: str | None = None, progress: bool = True,
            **values: Any) -> Path:
    """Run the configured setups and write the run directory; returns its path.

    Everything is validated (config, stream, domains) before any training starts.
    """
    cfg = build(MDLConfig, values, where="mdl")
    domains = load_domains(cfg)
    space = cfg.space()
    config = {"format": FORMAT, **dataclasses.asdict(cfg), "domain_names": [d.name for d in domains]}
    if run_name is not None:
        check_run_name(run_name, "mdl")
    out = Path(out).expanduser()
    check_out_dir(out)
    name = run_name or default_name(f"{cfg.stream}-mdl-seed{cfg.seed}", config)
    with RunDir(out / name, config, what="MDL run") as rd:
        return _run_setups(rd, cfg, space, domains, progress)


def _run_setups(rd: RunDir, cfg: MDLConfig, space: SearchSpace, domains: list[Task], progress: bool) -> Path:
    run_dir = rd.path
    log = print if progress else (lambda _m: None)
    done = []
    for name in cfg.setup_list():
        f = run_dir / "setups" / f"{name}.json"
        if f.exists():
            try:
                done.append(json.loads(f.read_text()))
                log(f"{name}: already finished, skipped")
                continue
            except json.JSONDecodeError:
                log(f"{name}: saved result unreadable, running it again")
        log(f"{name}: searching and training on {len(domains)} domains")
        result = _run_setup(name, cfg, space, domains, log)
        rd.write_text(f"setups/{name}.json", json.dumps(result))
        done.append(result)
        log(f"{name}: mean accuracy {sum(r['accuracy'] for r in result['domains'].values()) / len(domains):.3f}, "
            f"{result['unique_params']:,} parameters, {result['seconds']:.0f} s")
    _write_tables(rd, space, done)
    return run_dir


def _write_tables(rd: RunDir, space: SearchSpace, done: list[dict]) -> None:
    rows = [{"setup": s["setup"], "domain": d, "accuracy": r["accuracy"], "macs": r["macs"],
             "path": " ".join(s["paths"][d])} for s in done for d, r in s["domains"].items()]
    rd.write_text("results.csv", pd.DataFrame(rows).to_csv(index=False))
    summary = summarise(done)
    rd.write_text("summary.csv", summary.to_csv(index=False))
    rd.write_text("paths.json", json.dumps({s["setup"]: s["paths"] for s in done}, indent=2))
    rd.write_text("blocks.csv", block_table(space, done).to_csv(index=False))
    hist = [{"setup": s["setup"], **h} for s in done for h in s["history"]]
    rd.write_text("search_history.csv", pd.DataFrame(hist).to_csv(index=False))
    main = next((s for s in done if s["setup"] == "mpnas"), next((s for s in done if s["setup"] != "independent"), done[0]))
    rd.write_text("jaccard.csv", jaccard_matrix(space, main["paths"]).to_csv())
    rd.write_text("summary.json", json.dumps({
        "jaccard_setup": main["setup"], "setups": summary.to_dict(orient="records")}, indent=2))
