import pickle
import warnings

import numpy as np
import pytest
import torch

from cl_lab.data import OBJECTIVES, Split, Task, TaskStream, load_stream, synth
from cl_lab.data import streams as S
from cl_lab.data.real import MissingDataError, decathlon_lite, split_cifar100


def test_same_seed_identical_tensors_different_seed_differs():
    a = load_stream("synth-mini", seed=3, cache=False)
    b = load_stream("synth-mini", seed=3, cache=False)
    c = load_stream("synth-mini", seed=4, cache=False)
    for ta, tb in zip(a, b):
        assert torch.equal(ta.train.x, tb.train.x) and torch.equal(ta.test.y, tb.test.y)
    assert a.content_hash() == b.content_hash() != c.content_hash()
    assert not torch.equal(a[0].train.x, c[0].train.x)


def test_content_hash_sees_one_pixel():
    s = load_stream("synth-mini", cache=False)
    x = s[0].test.x.clone()
    x[0, 0, 0, 0] ^= 1
    t = s[0]
    changed = Task(t.name, t.class_names, t.train, Split(x, t.test.y), t.val, t.objective)
    assert TaskStream(s.name, [changed, *s.tasks[1:]]).content_hash() != s.content_hash()


def test_synth10_spec():
    s = load_stream("synth-10")
    assert len(s) == 10
    counts = [t.num_classes for t in s]
    assert min(counts) == 2 and max(counts) >= 20
    assert {t.objective for t in s} >= set(OBJECTIVES) - {"custom"}
    for t in s:
        assert t.image_shape == (3, 32, 32) and t.train.x.dtype == torch.uint8
        assert torch.bincount(t.test.y, minlength=t.num_classes).min() > 0
    names = {t.name for t in s}
    assert "digits" in names and "glyphs" in names
    assert names.isdisjoint(S.SYNTH_SOURCE)
    procedural = [d for d in synth.DOMAINS if d != "glyphs"]
    assert len(procedural) >= 10


@pytest.mark.parametrize("name", S.SYNTH_SOURCE)
def test_source_domains_render_their_label(name):
    """Every pretraining domain draws well-formed images, deterministically, and what it draws
    depends on the label: the same random stream with two different labels gives other images."""
    dom = S.DOMAINS[name]
    assert dom.num_classes >= 2
    labels = np.repeat(np.arange(dom.num_classes), 3)
    a = synth.render(dom, labels, synth.domain_rng(0, name, "t"))
    assert a.shape == (len(labels), 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, synth.render(dom, labels, synth.domain_rng(0, name, "t")))
    assert a.float().std() > 10  # not a blank image
    for c in range(1, dom.num_classes):
        zero = synth.render(dom, np.zeros(8, int), synth.domain_rng(1, name, "t"))
        other = synth.render(dom, np.full(8, c), synth.domain_rng(1, name, "t"))
        assert (zero != other).float().mean() > 0.01, f"{name}: class {c} draws what class 0 draws"


def test_synth_source_is_rich_and_disjoint_from_synth_10():
    assert len(S.SYNTH_SOURCE) >= 15 and len(set(S.SYNTH_SOURCE)) == len(S.SYNTH_SOURCE)
    assert set(S.SYNTH_SOURCE).isdisjoint(S.SYNTH_10)
    assert {S.DOMAINS[n].objective for n in S.SYNTH_SOURCE} >= set(OBJECTIVES) - {"custom"}
    # version 3's pool: no domain whose label is a colour
    assert S.embedded_task_names("synth-source") == [n for n in S.SYNTH_SOURCE if n != "hues"]
    assert S.embedded_task_names("synth-source@2") == list(S.SYNTH_SOURCE)


def test_version_2_stays_loadable_by_name_and_differs_from_version_3():
    v3, v2 = load_stream("synth-10"), load_stream("synth-10@2")
    assert load_stream("synth-10@3").content_hash() == v3.content_hash()
    assert v2.name == "synth-10@2" and v3.name == "synth-10"
    assert [t.name for t in v2] == [t.name for t in v3] == list(S.SYNTH_10)
    assert v3.meta["version"] == 3 and v2.meta["version"] == 2
    assert len(v2[0].test) == 400 and len(v3[0].test) == 1000
    assert v2.content_hash() != v3.content_hash()
    # the same labels drawn from the same random stream: version 3 only recolours
    x = synth.render(S.DOMAINS["shapes"], np.arange(10), synth.domain_rng(0, "shapes", "t"), recoloured=True)
    y = synth.render(S.DOMAINS["shapes"], np.arange(10), synth.domain_rng(0, "shapes", "t"))
    assert x.shape == y.shape and not torch.equal(x, y)


def test_recolour_hides_a_label_that_is_a_colour():
    """The hue domain's label *is* its colour: colour statistics read it off plain images and find
    nothing left after version 3's recolouring."""
    from cl_lab.probes import chance, colour_probe

    sizes = S.Sizes(train_total=480, val_total=160, test_total=320, min_train=10, min_test=10)
    plain = S.procedural_task("hues", 0, sizes)
    recoloured = S.procedural_task("hues", 0, sizes, recoloured=True)
    assert colour_probe(plain).test >= chance(plain) + 0.5
    assert colour_probe(recoloured).test <= chance(recoloured) + 0.10


def test_cache_roundtrip_and_corrupt_cache_is_regenerated():
    a = load_stream("synth-mini", seed=7)
    path = S.cache_path("synth-mini", 7)
    assert path.exists()
    b = load_stream("synth-mini", seed=7)
    assert a.content_hash() == b.content_hash()
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="refused"):
        c = load_stream("synth-mini", seed=7)
    assert c.content_hash() == a.content_hash()


def test_select_takes_named_tasks_in_order_and_names_the_stream_after_them():
    s = load_stream("synth-mini")
    assert S.embedded_task_names("synth-mini") == [t.name for t in s]
    sel = s.select(["blood-cells", "shapes"])
    assert sel.name == "synth-mini[blood-cells,shapes]" and [t.name for t in sel] == ["blood-cells", "shapes"]
    assert sel[1].train.labels().equal(s[0].train.labels())
    assert sel.content_hash() != s.select(["shapes", "blood-cells"]).content_hash()
    for bad, match in ((["glyphs"], r"unknown task\(s\) \['glyphs'\]; allowed: distinct names among \['shapes'"),
                       ([], "no tasks named"), (["shapes", "shapes"], "repeated tasks")):
        with pytest.raises(ValueError, match=match):
            s.select(bad)


def test_unknown_stream_suggests():
    with pytest.raises(ValueError, match="did you mean 'synth-10'|Did you mean 'synth-10'"):
        load_stream("synth10")


def test_task_from_tensors_nhwc_numpy_and_val_split():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    t = Task.from_tensors("mine", x, y, x[:8], y[:8], val_fraction=0.25)
    assert t.image_shape == (3, 16, 16) and t.num_classes == 4
    assert len(t.train) == 30 and len(t.val) == 10


@pytest.mark.parametrize("bad, match", [
    (dict(y_train=np.full(40, 0.5)), "integer class labels"),
    (dict(x_train=np.zeros((40, 3, 8, 8), dtype=np.float32) + 3), r"\[0, 1\]"),
    (dict(x_train="images"), "torch.Tensor or numpy"),
])
def test_task_from_tensors_rejects(bad, match):
    args = dict(x_train=np.zeros((40, 3, 8, 8), dtype=np.uint8), y_train=np.arange(40) % 2,
                x_test=np.zeros((4, 3, 8, 8), dtype=np.uint8), y_test=np.arange(4) % 2)
    args.update(bad)
    with pytest.raises((TypeError, ValueError), match=match):
        Task.from_tensors("t", args["x_train"], args["y_train"], args["x_test"], args["y_test"])


def test_task_rejects_labels_out_of_range_and_empty_stream():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="labels span"):
        Task("t", ("a", "b"), Split(x, torch.tensor([0, 1, 2, 0])), Split(x, torch.tensor([0, 1, 0, 1])))
    with pytest.raises(ValueError, match="empty"):
        TaskStream("s", [])


def test_task_from_torchvision_style_dataset():
    from PIL import Image

    class DS:
        classes = ["cat", "dog"]

        def __iter__(self):
            for i in range(12):
                yield Image.new("RGB", (20, 24), (i * 10, 0, 0)), i % 2

    t = Task.from_datasets("pets", DS(), DS(), image_size=16, val_fraction=0.25)
    assert t.class_names == ("cat", "dog") and t.image_shape == (3, 16, 16)
    assert len(t.train) + len(t.val) == 12


def _write_cifar100(root, per_class=2):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        labels = [c for c in range(100) for _ in range(per_class)]
        data = rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)
        with open(base / split, "wb") as fh:
            pickle.dump({b"data": data, b"fine_labels": labels}, fh)
    with open(base / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": [f"class{c}".encode() for c in range(100)]}, fh)
    return data, labels


def test_split_cifar100_reads_pickles(tmp_path):
    _write_cifar100(tmp_path, per_class=3)
    s = split_cifar100(root=tmp_path, n_tasks=10, val_fraction=0.0)
    assert len(s) == 10 and all(t.num_classes == 10 for t in s)
    assert s[1].class_names[0] == "class10"
    assert sorted(set(s[3].train.y.tolist())) == list(range(10))
    assert len(s[0].test) == 30


def test_split_cifar100_missing_files_print_the_command(tmp_path):
    with pytest.raises(MissingDataError, match=f"python data_scripts/download.py --stream split-cifar100 --root {tmp_path}"):
        split_cifar100(root=tmp_path)


def test_decathlon_lite_reads_svhn_mat_and_image_folders(tmp_path):
    from PIL import Image
    from scipy.io import savemat

    (tmp_path / "svhn").mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        savemat(tmp_path / "svhn" / f"{split}_32x32.mat",
                {"X": rng.integers(0, 255, (32, 32, 3, 20), dtype=np.uint8),
                 "y": (np.arange(20) % 10 + 1).reshape(-1, 1)})
        for c in ("banded", "dotted"):
            d = tmp_path / "decathlon-lite" / "dtd" / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40, 50), (i * 40, 10, 200)).save(d / f"{i}.png")
    s = decathlon_lite(root=tmp_path, datasets=["svhn", "dtd"], val_fraction=0.0)
    assert [t.name for t in s] == ["svhn", "dtd"]
    assert s[0].num_classes == 10 and 0 in s[0].train.y.tolist()  # label 10 means digit 0
    assert s[1].class_names == ("banded", "dotted") and s[1].image_shape == (3, 32, 32)
    with pytest.raises(MissingDataError, match="--stream decathlon-lite"):
        decathlon_lite(root=tmp_path, datasets=["gtsrb"])
    with pytest.raises(ValueError, match="not allowed"):
        decathlon_lite(root=tmp_path, datasets=["imagenet"])


def test_generation_is_independent_per_domain():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = S.procedural_task("counting", 0, S.Sizes(90, 15, 60, 20, 10), 3)
    b = S.procedural_task("counting", 0, S.Sizes(90, 15, 60, 20, 10), 3)
    assert torch.equal(a.train.x, b.train.x)
