"""Named task streams: the embedded offline benchmark, cached on disk, and the real streams."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._io import read_verified, write_verified
from .._paths import CACHE_ENV, cache_dir
from ..registry import Registry
from . import synth
from .incremental import permuted, plain_digits_task, rotated, split_by_classes, split_task_name
from .packaged import (
    DIGIT_CLASSES,
    GLYPH_CLASSES,
    load_digits_raw,
    make_glyphs,
    place_digits,
)
from .task import Split, Task, TaskStream

# the cache format (not a stream's content version, which streams record as meta['version']):
# 3: checksummed cache files; 2: synth-10's validation split grew to 300 images per task (train/test unchanged)
GENERATOR_VERSION = 3

DOMAINS: dict[str, synth.Domain] = {
    **synth.DOMAINS,
    "glyphs": synth.Domain("glyphs", "object recognition", GLYPH_CLASSES, make_glyphs, 0.03),
}
"""Every generated domain: the procedural ones of ``synth`` plus the packaged-glyph domain."""


@dataclass(frozen=True)
class Sizes:
    """Images per class in each split, chosen so every task has a similar total budget."""

    train_total: int = 1500
    val_total: int = 100
    test_total: int = 400
    min_train: int = 40
    min_test: int = 20
    at_least: bool = False
    """True: every split holds at least its total (per-class counts rounded up, not down)."""

    def per_class(self, k: int) -> tuple[int, int, int]:
        div = (lambda n: -(-n // k)) if self.at_least else (lambda n: n // k)
        return (
            max(self.min_train, div(self.train_total)),
            max(5, div(self.val_total)),
            max(self.min_test, div(self.test_total)),
        )


def _balanced(k: int, n_per: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.repeat(np.arange(k), n_per)
    return rng.permutation(labels)


def procedural_task(name: str, seed: int, sizes: Sizes, classes: int | None = None, *,
                    recoloured: bool = False) -> Task:
    """One task from a procedural domain (optionally its first ``classes`` classes; ``recoloured``:
    generator version 3's colour nuisance, ``synth.recolour``)."""
    dom = DOMAINS[name]
    k = classes or dom.num_classes
    n_tr, n_va, n_te = sizes.per_class(k)
    splits = {}
    for split, n in (("train", n_tr), ("val", n_va), ("test", n_te)):
        rng = synth.domain_rng(seed, name, split)
        y = _balanced(k, n, rng)
        splits[split] = Split(synth.render(dom, y, rng, recoloured=recoloured), torch.from_numpy(y))
    return Task(name, dom.class_names[:k], objective=dom.objective, meta={"source": "procedural"}, **splits)


DIGITS_V3_FRACTIONS = (0.4, 0.17)
"""Version 3's digits split (train, val; test is the rest): of scikit-learn's 1,797 images, 714
train, 300 validation and 783 test. The 1,000 test images of the other tasks would leave
fewer than 500 to train on, and reusing a digit in two placements would make test images
that are not independent."""


def digits_task(seed: int, fractions: tuple[float, float] = (0.6, 0.1), *, recoloured: bool = False) -> Task:
    """scikit-learn's real handwritten digits, placed and coloured at random, stratified splits
    (``recoloured``: then through ``synth.recolour``, as every version-3 task)."""
    images, labels = load_digits_raw()
    rng = synth.domain_rng(seed, "digits", "split")
    order = rng.permutation(len(labels))
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = order[labels[order] == c]
        a = int(len(idx) * fractions[0])
        b = a + int(len(idx) * fractions[1])
        splits["train"] += list(idx[:a])
        splits["val"] += list(idx[a:b])
        splits["test"] += list(idx[b:])
    out = {}
    for split, idx in splits.items():
        idx = np.asarray(rng.permutation(idx))
        r = synth.domain_rng(seed, "digits", split)
        img = place_digits(images[idx], r)
        if recoloured:
            img = synth.recolour(img, r)
        img = img + r.normal(0, 0.03, img.shape)
        x = torch.from_numpy(np.clip(np.round(img * 255), 0, 255).astype(np.uint8))
        out[split] = Split(x, torch.from_numpy(labels[idx]))
    return Task("digits", DIGIT_CLASSES, objective="object recognition", meta={"source": "scikit-learn"}, **out)


def _task(name: str, seed: int, sizes: Sizes, classes: int | None = None, *, recoloured: bool = False) -> Task:
    if name == "digits":
        return digits_task(seed, DIGITS_V3_FRACTIONS, recoloured=True) if recoloured else digits_task(seed)
    return procedural_task(name, seed, sizes, classes, recoloured=recoloured)


SYNTH_10 = (
    "shapes",
    "textures",
    "scenes",
    "counting",
    "blood-cells",
    "glyphs",
    "art-styles",
    "aerial",
    "skin-lesions",
    "digits",
)
SYNTH_SOURCE = (
    "gratings", "bar-count", "layout", "curves", "symmetry", "spiral-arms", "noise-spectrum", "sizes", "hues",
    "lattices", "gradients", "junctions", "ring-count", "frequency", "relations", "blur", "wedges", "density",
)
"""The pretraining pool of the shipped backbone: 18 procedural domains (orientation, counting,
position, curves, symmetry, spiral arms, spectral slope, size, hue, lattice type, shading
direction, line junctions, ring count, spatial frequency, spatial relations, blur, wedge angle,
dot density), none of them a synth-10 task."""
SYNTH_MINI = (("shapes", 4), ("counting", 3), ("blood-cells", 2))


STREAMS = Registry("stream")
"""Every named stream. A stream registers where it is defined::

    @register_stream("my-stream", tasks=("a", "b"))     # embedded: built from a seed, cached
    def build_my_stream(seed: int) -> TaskStream: ...

``kind="real"`` streams (``cl_lab.data.real``) read downloaded files and take options."""


def register_stream(name: str, *, kind: str = "embedded", tasks: tuple[str, ...] | None = None,
                    revision: int | None = None, **info):
    """Decorator: register a stream builder. ``tasks`` (embedded streams) lets parameters be checked
    without generating the stream; ``revision`` marks a change of content on top of the generator
    version (older caches are regenerated)."""
    if kind not in ("embedded", "real"):
        raise ValueError(f"stream kind must be 'embedded' or 'real'; got {kind!r}")
    return STREAMS.register(name, kind=kind, tasks=tuple(tasks) if tasks else None, revision=revision, **info)


@register_stream("synth-mini", tasks=tuple(n for n, _ in SYNTH_MINI))
def build_synth_mini(seed: int) -> TaskStream:
    sizes = Sizes(train_total=90, val_total=15, test_total=60, min_train=20, min_test=10)
    tasks = [_task(n, seed, sizes, k) for n, k in SYNTH_MINI]
    return TaskStream("synth-mini", tasks, {"seed": seed, "kind": "embedded"})


@register_stream("synth-10", tasks=SYNTH_10, revision=3, version=3, aliases=("synth-10@3",))
def build_synth_10(seed: int) -> TaskStream:
    """synth-10, generator version 3: every task (the real glyphs and digits too) through
    ``synth.recolour``, so global colour statistics carry no label; 1,000 test and 300 validation
    images per task (1.45 points of standard error at 70% accuracy, against 2.3 at 400)."""
    sizes = Sizes(val_total=300, test_total=1000, at_least=True)
    tasks = [_task(n, seed, sizes, recoloured=True) for n in SYNTH_10]
    return TaskStream("synth-10", tasks, {"seed": seed, "kind": "embedded", "version": 3})


@register_stream("synth-10@2", tasks=SYNTH_10, version=2)
def build_synth_10_v2(seed: int) -> TaskStream:
    """synth-10 as it was before version 3 (colour statistics solve scenes, art-styles, aerial and
    blood-cells to 0.63-0.81; 400 test images per task), kept for comparison."""
    # a validation split large enough to choose hyperparameters on (about 3x the standard error of 100)
    sizes = Sizes(val_total=300)
    return TaskStream("synth-10@2", [_task(n, seed, sizes) for n in SYNTH_10],
                      {"seed": seed, "kind": "embedded", "version": 2})


SYNTH_SOURCE_V3 = tuple(n for n in SYNTH_SOURCE if n != "hues")
"""Version 3's pretraining pool: synth-source without ``hues``, whose label is a colour (under
version 3's colour nuisance it has none left to learn, and a backbone should not lean on colour)."""


@register_stream("synth-source", tasks=SYNTH_SOURCE_V3, revision=3, version=3, aliases=("synth-source@3",))
def build_synth_source(seed: int) -> TaskStream:
    """The pretraining pool, generator version 3: 17 domains through ``synth.recolour`` as synth-10."""
    sizes = Sizes(train_total=2400, val_total=200, test_total=400)
    tasks = [_task(n, seed, sizes, recoloured=True) for n in SYNTH_SOURCE_V3]
    return TaskStream("synth-source", tasks, {"seed": seed, "kind": "embedded", "version": 3})


@register_stream("synth-source@2", tasks=SYNTH_SOURCE, revision=2)  # revision 2: 5 -> 18 domains
def build_synth_source_v2(seed: int) -> TaskStream:
    """The 18-domain pool the version-2 shipped backbone was trained on."""
    sizes = Sizes(train_total=2400, val_total=200, test_total=400)
    return TaskStream(
        "synth-source@2", [_task(n, seed, sizes) for n in SYNTH_SOURCE],
        {"seed": seed, "kind": "embedded", "version": 2}
    )


ROTATIONS = (0, 45, 90, 135, 180)
"""The angles of ``rotated-digits``' five tasks, in degrees."""


def _embedded(stream: TaskStream, seed: int) -> TaskStream:
    """A built stream marked as the embedded stream of ``seed`` (what its cache entry is checked against)."""
    stream.meta.update({"seed": seed, "kind": "embedded"})
    return stream


def _split_names(stream: str, classes: Sequence[str], k: int) -> tuple[str, ...]:
    return tuple(split_task_name(stream, classes[i:i + k], i // k) for i in range(0, len(classes), k))


@register_stream("split-digits", tasks=_split_names("split-digits", DIGIT_CLASSES, 2), scenario="class")
def build_split_digits(seed: int) -> TaskStream:
    """scikit-learn's real digits (white on black, ``incremental.plain_digits_task``), 5 tasks of 2
    classes in the natural order: Split-MNIST's layout, offline and in seconds."""
    return _embedded(split_by_classes(plain_digits_task(seed), 2, name="split-digits"), seed)


@register_stream("permuted-digits", tasks=tuple(f"permuted-digits-{i}" for i in range(1, 6)), scenario="domain")
def build_permuted_digits(seed: int) -> TaskStream:
    """The 10 digits, 5 tasks: the original images, then 4 fixed pixel permutations (domain-incremental)."""
    return _embedded(permuted(plain_digits_task(seed), 5, seed=seed, name="permuted-digits"), seed)


@register_stream("rotated-digits", tasks=tuple(f"rotated-digits-{a}" for a in ROTATIONS), scenario="domain")
def build_rotated_digits(seed: int) -> TaskStream:
    """The 10 digits, 5 tasks: rotated by 0, 45, 90, 135 and 180 degrees (domain-incremental)."""
    return _embedded(rotated(plain_digits_task(seed), ROTATIONS, name="rotated-digits"), seed)


@register_stream("split-glyphs", tasks=_split_names("split-glyphs", GLYPH_CLASSES, 4), scenario="class")
def build_split_glyphs(seed: int) -> TaskStream:
    """synth-10's glyphs task (20 letters in 8 real fonts, version 3's colour nuisance), 5 tasks of
    4 letters in alphabetical order: a class-incremental split of an embedded task."""
    glyphs = _task("glyphs", seed, Sizes(val_total=300, test_total=1000, at_least=True), recoloured=True)
    return _embedded(split_by_classes(glyphs, 4, name="split-glyphs"), seed)


def stream_names() -> list[str]:
    return list(STREAMS)


def is_embedded(name: str) -> bool:
    return name in STREAMS and STREAMS.info(name)["kind"] == "embedded"


def embedded_task_names(name: str) -> list[str] | None:
    """The task names of an embedded stream, known without generating it (None for other streams)."""
    tasks = STREAMS.info(name).get("tasks") if is_embedded(name) else None
    return list(tasks) if tasks else None


def _to_payload(stream: TaskStream) -> dict:
    tasks = []
    for t in stream.tasks:
        tasks.append(
            {
                "name": t.name,
                "objective": t.objective,
                "class_names": list(t.class_names),
                "meta": t.meta,
                **{s: (getattr(t, s).x, getattr(t, s).y) for s in ("train", "val", "test") if getattr(t, s) is not None},
            }
        )
    return {"version": GENERATOR_VERSION, "revision": _revision(stream.name), "name": stream.name,
            "meta": stream.meta, "tasks": tasks, "hash": stream.content_hash()}


def _from_payload(payload: dict, name: str | None = None, seed: int | None = None) -> TaskStream:
    """The stream a cache file holds, after checking it is the one asked for: a file copied over
    another (another seed, stream or generator version) is refused, whatever its checksum says."""
    if not isinstance(payload, dict):
        raise ValueError("not a stream cache")
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    found = (payload.get("name"), meta.get("seed"), payload.get("version"), payload.get("revision"))
    wanted = (name, seed, GENERATOR_VERSION, _revision(name)) if name is not None else found
    if found != wanted:
        raise ValueError(f"it holds stream {found[0]!r} seed {found[1]!r} (generator {found[2]!r}, revision "
                         f"{found[3]!r}), not {wanted[0]!r} seed {wanted[1]!r} (generator {wanted[2]!r}, revision "
                         f"{wanted[3]!r})")
    tasks = []
    for t in payload["tasks"]:
        splits = {s: Split(*t[s]) for s in ("train", "val", "test") if s in t}
        tasks.append(Task(t["name"], tuple(t["class_names"]), objective=t["objective"], meta=t["meta"], **splits))
    stream = TaskStream(payload["name"], tasks, payload["meta"])
    if stream.content_hash() != payload["hash"]:
        raise ValueError("content hash mismatch")
    return stream


def _revision(name: str) -> int | None:
    return STREAMS.info(name).get("revision") if name in STREAMS else None


def cache_path(name: str, seed: int) -> Path:
    rev = f"r{_revision(name)}" if _revision(name) is not None else ""
    return cache_dir() / "streams" / f"{name}-seed{seed}-v{GENERATOR_VERSION}{rev}.pt"


def load_stream(name: str, seed: int = 0, *, cache: bool = True, root: str | Path | None = None,
                **kwargs) -> TaskStream:
    """Load a named stream. Embedded streams are generated once per seed and cached on disk."""
    if not isinstance(name, str):
        raise TypeError(f"stream must be a name (str) or a TaskStream; got {type(name).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    name = STREAMS.canonical(name) if name in STREAMS else name
    if is_embedded(name):
        if kwargs or root is not None:
            raise ValueError(f"stream {name!r} takes no options; got {sorted(kwargs) + (['root'] if root else [])}")
        path = None
        if cache:
            try:
                path = cache_path(name, seed)
            except OSError as e:  # an unusable cache directory: generate without caching
                warnings.warn(f"the stream cache directory is unusable ({e.strerror or e}: {e.filename}); generating "
                              f"without it. Set {CACHE_ENV} to a writable directory", stacklevel=2)
                cache = False
        if cache and path.exists():
            try:  # the checksum is verified before anything is deserialised; tensors only
                return _from_payload(read_verified(path), name, seed)
            except Exception as e:  # a corrupt or foreign cache entry is regenerated, never trusted
                warnings.warn(f"cached stream {path} is refused ({e}); regenerating it", stacklevel=2)
        t0 = time.perf_counter()
        stream = STREAMS[name](seed)
        stream.meta["generation_seconds"] = round(time.perf_counter() - t0, 2)
        if cache:
            try:
                write_verified(path, _to_payload(stream))
            except OSError as e:  # the cache is optional: a failed write never stops a run
                warnings.warn(f"could not write the stream cache {path} ({e.strerror or e}); continuing without it. "
                              f"Set {CACHE_ENV} to a writable directory to cache generated streams", stacklevel=2)
        return stream
    if name in STREAMS:
        return STREAMS[name](root=root, seed=seed, **kwargs)
    STREAMS.canonical(name)  # raises: unknown stream, with the allowed names and the closest one
    raise AssertionError(name)


from . import real as _real  # noqa: E402,F401  (registers the real streams)
