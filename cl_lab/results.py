"""The on-disk results format, writers and readers together: one directory per run, tidy CSVs.

The runner writes a run's progress through ``write_progress`` (each file atomically, through
the run's ``RunDir``); everything that reads results (``RunResult``, ``load``, the dashboards,
the notebooks, ``cl-lab summary``) reads through the functions here. A run directory holds
``config.json`` (the fully resolved config), ``accuracy.csv`` (the accuracy matrix in long
form), ``metrics.csv`` (per-task summary metrics), ``costs.csv`` (parameter, compute and
time cost per task), ``summary.json`` (status and final metrics) and ``checkpoint.pt``
(resume point). ``load(root)`` reads every run under ``root``. An MDL run directory
(``cl-lab mdl``) has its own tables (``MDL_FILES``), written by ``write_mdl`` and read by ``load_mdl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FILES = ("config.json", "accuracy.csv", "metrics.csv", "costs.csv", "summary.json")


# ----------------------------------------------------------------------------- writing

def _csv(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


def accuracy_rows(R: np.ndarray, task_names: Sequence[str]) -> list[dict[str, Any]]:
    """The accuracy matrix in long form: one row per (after_task, task) of its lower triangle."""
    rows = []
    for i in range(R.shape[0]):
        for j in range(i + 1):
            rows.append({"after_task": i, "after_task_name": task_names[i], "task": j,
                         "task_name": task_names[j], "accuracy": float(R[i, j])})
    return rows


def summary_record(R: np.ndarray, n_tasks: int, costs: list[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json``: status, tasks done and final metrics of the rows of ``R`` trained so far."""
    from . import metrics as M

    done = R.shape[0]
    return {"status": "complete" if done == n_tasks else "running", "completed_tasks": done, "tasks": n_tasks,
            "avg_accuracy": float(M.average_accuracy(R)[-1]), "bwt": M.bwt(R), "forgetting": M.forgetting(R),
            "train_seconds": float(sum(r["train_seconds"] for r in costs))}


def write_progress(rd: Any, R: np.ndarray, task_names: Sequence[str], costs: list[dict[str, Any]],
                   n_tasks: int, steps: list[dict[str, Any]] | None = None) -> None:
    """Write accuracy, metrics, costs, the step-resolution evaluations (``steps.csv``, when the run
    makes them: ``eval_every``) and summary for the ``len(R)`` tasks trained so far, each atomically
    through the run's ``RunDir`` (``summary.json`` last: it says how far the others go)."""
    from . import metrics

    rd.write_text("accuracy.csv", _csv(accuracy_rows(R, task_names)))
    table = metrics.per_task_table(R)
    for row in table:
        row["after_task_name"] = task_names[row["after_task"]]
    rd.write_text("metrics.csv", _csv(table))
    rd.write_text("costs.csv", _csv(costs))
    if steps:
        rd.write_text("steps.csv", _csv(steps))
    rd.write_json("summary.json", summary_record(R, n_tasks, costs))


# ----------------------------------------------------------------------------- reading

def read_table(run_dir: str | Path, name: str):
    """One CSV of a run directory as a DataFrame (``accuracy.csv``, ``metrics.csv``, ``costs.csv``;
    costs gain the storage columns of ``with_storage``)."""
    import pandas as pd

    df = pd.read_csv(Path(run_dir) / name)
    return with_storage(df) if name == "costs.csv" else df


BYTES_PER_PARAM = 4
"""Stored parameters are float32."""


def with_storage(costs):
    """Cost records plus what each task adds to storage, everything counted: ``params_bytes`` (its
    parameters: head, adapters, masks as parameter-equivalents), ``state_bytes`` (what the method's
    other stored state grew by: replay buffer, Fisher and anchors, BN statistics, kept data),
    ``stored_bytes`` (their sum) and ``stored_pct`` (as % of the backbone's bytes). The mean of
    ``stored_pct`` over a run's tasks is its total storage beyond the backbone, per task.
    ``task_params_pct`` stays: parameters only."""
    if costs.empty or not {"extra_bytes", "task_params", "backbone_params", "task"} <= set(costs.columns):
        return costs
    out = costs.copy()
    keys = ["run"] if "run" in out else []
    order = out.sort_values([*keys, "task"])
    grown = (order.groupby(keys).extra_bytes.diff() if keys else order.extra_bytes.diff())
    out["params_bytes"] = BYTES_PER_PARAM * out.task_params
    # growth of the other stored state (a method whose state shrinks stores nothing new that task)
    out["state_bytes"] = grown.reindex(out.index).fillna(out.extra_bytes).fillna(0).clip(lower=0).astype("int64")
    out["stored_bytes"] = out.params_bytes + out.state_bytes
    out["stored_pct"] = 100.0 * out.stored_bytes / (BYTES_PER_PARAM * out.backbone_params.clip(lower=1))
    return out


def task_names(run_dir: str | Path) -> list[str]:
    """The names of the run's tasks, in stream order."""
    return [t["name"] for t in read_config(run_dir)["stream"]["tasks"]]


def run_status(run_dir: str | Path) -> str:
    """'complete', 'running' (stopped or still training) or 'unknown' (no readable ``summary.json``)."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text()).get("status", "unknown")
    except (OSError, ValueError):
        return "unknown"


def read_config(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "config.json").read_text())


def accuracy_matrix(run_dir: str | Path) -> np.ndarray:
    """The accuracy matrix R of one run (NaN above the diagonal)."""
    import pandas as pd

    df = pd.read_csv(Path(run_dir) / "accuracy.csv")
    n_rows = int(df.after_task.max()) + 1
    n_tasks = len(read_config(run_dir)["stream"]["tasks"])
    R = np.full((n_rows, n_tasks), np.nan)
    R[df.after_task.to_numpy(), df.task.to_numpy()] = df.accuracy.to_numpy()
    return R


def run_dirs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"results root {str(root)!r} does not exist")
    if (root / "config.json").exists():
        return [root]
    return sorted(p.parent for p in root.rglob("config.json") if (p.parent / "accuracy.csv").exists())



class BrokenRunWarning(UserWarning):
    """A run directory under the results root was skipped (a file is corrupt or torn)."""


def _read_run(d: Path, filename: str):
    """(config, summary, table) of one run; raises ValueError naming the broken file."""
    import pandas as pd

    def js(name: str) -> dict:
        try:
            out = json.loads((d / name).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{d / name} is corrupt ({e})") from None
        if not isinstance(out, dict):
            raise ValueError(f"{d / name} is corrupt (not a JSON object)")
        return out

    cfg = js("config.json")
    summary = js("summary.json") if (d / "summary.json").exists() else {}

    def table(name: str):
        try:
            return pd.read_csv(d / name)
        except (OSError, ValueError) as e:
            raise ValueError(f"{d / name} is corrupt ({e})") from None

    df = table(filename)
    tables = {name: (df if name == filename else table(name)) for name in PROGRESS if (d / name).exists()}
    check_progress(d, tables, summary)
    for key in ("method", "stream", "seed", "backbone"):
        if key not in cfg:
            raise ValueError(f"{d / 'config.json'} is corrupt (no {key!r})")
    return cfg, summary, df


PROGRESS = ("accuracy.csv", "metrics.csv", "costs.csv")
"""The progress files the runner rewrites after every task (with ``summary.json``)."""
REPAIR = "rerun the same command to repair it from the checkpoint"


def check_progress(d: Path, tables: dict[str, Any], summary: dict[str, Any]) -> int:
    """The number of trained tasks, after checking that every progress file agrees with it:
    ``accuracy.csv`` holds the lower triangle for n tasks, ``metrics.csv`` one row per task
    (``after_task`` 0..n-1), ``costs.csv`` one row per task (``task`` 0..n-1) and
    ``summary.json`` n completed tasks. A file cut short (a kill, ``head -n -1``) is named."""
    acc = tables.get("accuracy.csv")
    if acc is None:
        raise ValueError(f"{d / 'accuracy.csv'} is missing")
    try:
        n = int(acc.after_task.max()) + 1 if len(acc) else 0
        complete = len(acc) == n * (n + 1) // 2 and acc.accuracy.notna().all()
    except (ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{d / 'accuracy.csv'} is corrupt ({e})") from None
    done = summary.get("completed_tasks")
    if not complete or (done is not None and n != done):
        raise ValueError(f"{d / 'accuracy.csv'} is torn: {len(acc)} rows for {n} trained task(s)"
                         + (f", summary.json says {done}" if done is not None else "") + f"; {REPAIR}")
    for name, col in (("metrics.csv", "after_task"), ("costs.csv", "task")):
        t = tables.get(name)
        if t is None:
            continue
        try:
            ok = col in t.columns and sorted(t[col].tolist()) == list(range(n)) and not t.isna().all(axis=1).any()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            got = len(t) if hasattr(t, "__len__") else "?"
            raise ValueError(f"{d / name} is torn: {got} row(s) for {n} trained task(s); {REPAIR}")
    return n


VARIANT_KEYS = ("scenario", "tasks", "backbone", "backbone_sha256", "pretrained", "weights_sha256", "first_task_epochs",
                "first_task_lr", "epochs", "batch_size", "bn_stats", "eval_split", "memory_format", "compile", "stream_seed",
                "stream_hash")
"""Settings that make two runs of one method different configurations (the seed does not): the
weights a run started from (by name and by content), the stream's content, the layout, ..."""


def _variant(cfg: dict[str, Any]) -> dict[str, str]:
    flat = dict(cfg)
    stream = cfg.get("stream")
    if isinstance(stream, dict):
        flat["stream_hash"] = stream.get("hash")
        flat["tasks"] = len(stream.get("tasks") or [])
    # runs from before these settings existed: today's default layout, a built-in backbone has no digest
    flat.setdefault("memory_format", "auto")
    flat.setdefault("backbone_sha256", None)
    flat.setdefault("scenario", "task")
    flat.setdefault("compile", False)
    out = {}
    for k in VARIANT_KEYS:
        if k in flat:
            v = flat[k]
            out[k] = json.dumps(v[:8] if k.endswith(("sha256", "hash")) and isinstance(v, str) else v, sort_keys=True)
    for k, v in (cfg.get("method_config") or {}).items():
        out[k] = json.dumps(v, sort_keys=True)
    return out


IMPLIED_BY = {"weights_sha256": ("pretrained",), "backbone_sha256": ("backbone",), "stream_hash": ("tasks", "stream_seed")}
"""A digest left out of a label where the setting it follows from already tells the runs apart
(``pretrained=a`` vs ``b`` needs no weights hash; the same file name with two contents does)."""


def _explained_away(variants: list[dict[str, str]], names: list[str]) -> list[str]:
    keep = []
    for name in names:
        parents = IMPLIED_BY.get(name)
        if parents:
            pairs = {(tuple(v.get(p) for p in parents), v.get(name)) for v in variants}
            if len(pairs) == len({parent for parent, _ in pairs}):
                continue
        keep.append(name)
    return keep


def _config_labels(keys: list[tuple[str, str]], variants: list[dict[str, str]]) -> list[str]:
    """For runs keyed (method, stream): the method, plus every setting that differs between that method's
    runs on that stream, e.g. ``clr (pretrained=null)``; seeds of one configuration share a label."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for key, v in zip(keys, variants):
        groups.setdefault(key, []).append(v)
    differing = {key: _explained_away(vs, sorted({name for v in vs for name in v
                                                  if any(w.get(name) != v[name] for w in vs)}))
                 for key, vs in groups.items()}
    # a method that also has runs from weights elsewhere in the folder: its runs from random weights say so
    # even where they are alone on their stream (05's SGD from random weights beside SGD from the backbone)
    starts: dict[str, set] = {}
    for (method, _), v in zip(keys, variants):
        if "pretrained" in v and v.get("backbone_sha256") in (None, "null"):  # built-in backbones only: a
            starts.setdefault(method, set()).add(v["pretrained"])        # user's module carries its own weights
    labels = []
    for (method, stream), v in zip(keys, variants):
        names = differing[(method, stream)]
        label = method if not names else f"{method} (" + ", ".join(
            f"{name}={v.get(name, '-').strip(chr(34))}" for name in names) + ")"
        if ("pretrained" not in names and v.get("pretrained") == "null" and len(starts.get(method, ())) > 1
                and v.get("backbone_sha256") in (None, "null")):
            label = f"{label} (random weights)" if names else f"{method} (random weights)"
        labels.append(label)
    return labels


def _load(root: str | Path, filename: str):
    import warnings

    import pandas as pd

    frames, keys, variants = [], [], []
    for d in run_dirs(root):
        if not (d / filename).exists():
            continue
        try:
            cfg, summary, df = _read_run(d, filename)
        except ValueError as e:
            warnings.warn(f"skipping run {d.name}: {e}", BrokenRunWarning, stacklevel=3)
            continue
        df.insert(0, "run", d.name)
        df.insert(1, "method", cfg["method"])
        df.insert(2, "stream", cfg["stream"]["name"] if isinstance(cfg["stream"], dict) else cfg["stream"])
        df.insert(3, "seed", cfg["seed"])
        df.insert(4, "backbone", cfg["backbone"])
        df.insert(5, "status", summary.get("status", "unknown"))
        df.insert(6, "threads", str(cfg.get("threads", "unknown")))
        df.insert(7, "scenario", cfg.get("scenario", "task"))  # runs from before scenarios existed: task-IL
        col = "eval_task" if "eval_task" in df else "task"  # the task a row's accuracy is measured on
        if col in df and isinstance(cfg["stream"], dict):  # each task's class count (chance = 1 / classes)
            classes = [t.get("classes") for t in cfg["stream"].get("tasks", [])]
            df["classes"] = [classes[t] if 0 <= t < len(classes) else None for t in df[col].astype(int)]
        frames.append(df)
        keys.append((cfg["method"], df.stream.iloc[0] if len(df) else ""))
        variants.append(_variant(cfg))
    if not frames:
        return pd.DataFrame()
    for df, label in zip(frames, _config_labels(keys, variants)):
        df.insert(2, "config", label)
    out = pd.concat(frames, ignore_index=True)
    mixed = out.groupby(["method", "stream"]).threads.nunique()
    if (mixed > 1).any() or out.threads.str.contains(r"\+").any():
        from .rundir import ThreadCountWarning

        warnings.warn(f"runs under {root} were made with different thread counts ({sorted(out.threads.unique())}); "
                      "results differ between thread counts, so compare runs made with the same count "
                      "(column 'threads')", ThreadCountWarning, stacklevel=3)
    return out


def load(root: str | Path):
    """One tidy DataFrame of accuracy rows across every run under ``root``."""
    return _load(root, "accuracy.csv")


def load_metrics(root: str | Path):
    """Per-task summary metrics (avg accuracy, BWT, forgetting, ...) across runs."""
    return _load(root, "metrics.csv")


def load_steps(root: str | Path):
    """Step-resolution accuracy (``steps.csv`` of runs made with ``eval_every``) across runs: one row per
    (trained task, step, evaluated task)."""
    return _load(root, "steps.csv")


def load_costs(root: str | Path):
    """Per-task cost records (parameters, MACs, wall time, and everything stored: ``with_storage``)
    across runs."""
    return with_storage(_load(root, "costs.csv"))


def run_table(root: str | Path):
    """One row per run under ``root``: its configuration label, seed, tasks, status, final metrics
    and what it stores per task (``stored_per_task_pct``: everything stored, mean ``stored_pct`` over
    tasks; ``params_per_task_pct``: parameters only; final ``extra_bytes``), sorted by stream,
    configuration and seed. ``seed_table`` averages it over seeds."""
    import pandas as pd

    m = load_metrics(root)
    if m.empty:
        return m
    last = m.sort_values("after_task").groupby("run").tail(1).copy()
    last["tasks"] = last.after_task + 1
    c = load_costs(root)
    if not c.empty:
        agg = {"stored_per_task_pct": ("stored_pct", "mean"), "params_per_task_pct": ("task_params_pct", "mean"),
               "extra_bytes": ("extra_bytes", "last"), "train_seconds": ("train_seconds", "sum")}
        per = c.groupby("run").agg(**{k: v for k, v in agg.items() if v[0] in c.columns})
        last = last.merge(per, left_on="run", right_index=True, how="left")
    last["fwt"] = last.run.map(_forward_transfer(root, m))
    cols = ["stream", "scenario", "config", "method", "seed", "tasks", "status", "threads", "avg_accuracy", "bwt", "forgetting",
            "fwt", "first_task_accuracy", "stored_per_task_pct", "params_per_task_pct", "extra_bytes", "train_seconds",
            "run"]
    out = last[[k for k in cols if k in last.columns]]
    return pd.DataFrame(out).sort_values(["stream", "config", "tasks", "seed"]).reset_index(drop=True)


def _forward_transfer(root: str | Path, m) -> dict[str, float]:
    """Forward transfer (``metrics.fwt``) of every run that has a reference under ``root``: the one
    ``independent`` run on the same stream content, seed, epochs, batch size, backbone and starting
    weights (``pretrained``: a method from random weights is measured against an independent network
    from random weights). FWT is then the mean over tasks i >= 1 of (accuracy on task i right after
    learning it) - (the independent network's). Several matching independent runs (other settings
    of their own): no FWT, rather than a guess."""
    import numpy as np

    from . import metrics as M

    key = {}
    for d in run_dirs(root):
        try:
            cfg = read_config(d)
            stream = cfg["stream"]
            key[d.name] = (stream.get("hash") if isinstance(stream, dict) else stream, cfg["seed"], cfg.get("epochs"),
                           cfg.get("batch_size"), cfg.get("backbone"), cfg.get("pretrained"),
                           cfg.get("weights_sha256"), cfg.get("scenario", "task"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    diag = {run: g.sort_values("after_task").current_task_accuracy.to_numpy() for run, g in m.groupby("run")
            if "current_task_accuracy" in g}
    method = m.groupby("run").method.first()
    refs: dict[tuple, list] = {}
    for run, d in diag.items():
        if run in key and method[run] == "independent":
            refs.setdefault(key[run], []).append(d)
    out = {}
    for run, d in diag.items():
        found = refs.get(key.get(run), [])
        if len(found) != 1 or len(found[0]) < len(d):
            continue
        R = np.full((len(d), len(d)), np.nan)
        R[np.arange(len(d)), np.arange(len(d))] = d
        out[run] = M.fwt(R, found[0][: len(d)])
    return out


def seed_table(runs):
    """``run_table`` averaged over seeds: mean, standard deviation and count per (stream, configuration,
    tasks) of the final metrics and costs (complete runs only)."""
    done = runs[runs.status == "complete"]
    metrics_cols = [k for k in ("avg_accuracy", "forgetting", "bwt", "fwt", "stored_per_task_pct", "params_per_task_pct",
                                "extra_bytes")
                    if k in done.columns]
    keys = ["stream", "scenario", "config", "tasks"] if "scenario" in done.columns else ["stream", "config", "tasks"]
    out = done.groupby(keys)[metrics_cols].agg(["mean", "std", "count"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()


MDL_FILES = ("config.json", "results.csv", "summary.csv", "paths.json", "blocks.csv", "search_history.csv",
             "jaccard.csv", "summary.json")
"""An MDL run directory (``cl-lab mdl``): these tables, plus ``setups/<name>.json`` per finished setup."""


def read_mdl_setup(run_dir: str | Path, name: str) -> dict[str, Any] | None:
    """A finished setup's saved result (None: not finished yet); ``ValueError`` when its file is unreadable."""
    f = Path(run_dir) / "setups" / f"{name}.json"
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f} is unreadable ({e})") from None


def write_mdl_setup(rd: Any, name: str, result: dict[str, Any]) -> None:
    """Save one finished setup at once (atomically, through the run's ``RunDir``), so a rerun skips it."""
    rd.write_text(f"setups/{name}.json", json.dumps(result))


def write_mdl(rd: Any, *, results, summary, paths: dict[str, Any], blocks, history: list[dict[str, Any]], jaccard,
              info: dict[str, Any]) -> None:
    """Write an MDL run's tables (what ``load_mdl`` reads): per setup and domain ``results``; the per-setup
    ``summary`` (a DataFrame, also in ``summary.json`` under ``setups``); chosen ``paths``; ``blocks`` (setup,
    layer, block, domain); the search ``history``; the ``jaccard`` matrix; ``info``: ``jaccard_setup``,
    ``not_converged``, ``chance_rewards``, ``convergence``."""
    import pandas as pd

    rd.write_text("results.csv", pd.DataFrame(results).to_csv(index=False))
    rd.write_text("summary.csv", summary.to_csv(index=False))
    rd.write_text("paths.json", json.dumps(paths, indent=2))
    rd.write_text("blocks.csv", blocks.to_csv(index=False))
    rd.write_text("search_history.csv", pd.DataFrame(history).to_csv(index=False))
    rd.write_text("jaccard.csv", jaccard.to_csv())
    rd.write_text("summary.json", json.dumps({**info, "setups": summary.to_dict(orient="records")}, indent=2))


def find_mdl_run(root: str | Path) -> str | None:
    """The most recent finished MDL run directory under ``root`` (None if there is none)."""
    runs = [p.parent for p in Path(root).rglob("summary.json") if (p.parent / "setups").is_dir()]
    return str(max(runs, key=lambda p: (p / "summary.json").stat().st_mtime)) if runs else None


def load_mdl(run_dir: str | Path) -> dict[str, Any]:
    """Read an MDL run directory back: config, results, summary, paths, blocks, Jaccard matrix,
    the search history (step, domain, entropy, reward, baseline, top probability per setup) and
    ``not_converged``: every search whose final entropy stayed above the threshold;
    ``chance_rewards``: every search whose reward accuracy ended at chance level."""
    import pandas as pd

    p = Path(run_dir)
    if not (p / "summary.json").exists():
        raise FileNotFoundError(f"{p} holds no finished MDL run (summary.json missing)")
    info = json.loads((p / "summary.json").read_text())
    history = pd.read_csv(p / "search_history.csv") if (p / "search_history.csv").stat().st_size > 1 else pd.DataFrame()
    return {
        "history": history,
        "not_converged": info.get("not_converged", []),
        "chance_rewards": info.get("chance_rewards", []),
        "jaccard_setup": info.get("jaccard_setup"),
        "config": json.loads((p / "config.json").read_text()),
        "results": pd.read_csv(p / "results.csv"),
        "summary": pd.read_csv(p / "summary.csv"),
        "paths": json.loads((p / "paths.json").read_text()),
        "blocks": pd.read_csv(p / "blocks.csv"),
        "jaccard": pd.read_csv(p / "jaccard.csv", index_col=0),
    }

