import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from cl_lab.models import (
    MultiHead,
    WeightsError,
    as_backbone,
    build_backbone,
    cifar_resnet,
    count_params,
    load_weights,
    shipped_checkpoints,
)
from cl_lab.models import weights as W


@pytest.mark.parametrize("depth", [8, 14, 20])
def test_cifar_resnet_shapes(depth):
    bb = cifar_resnet(depth, 8)
    assert bb(torch.rand(2, 3, 32, 32)).shape == (2, bb.out_dim) and bb.out_dim == 32


def test_cifar_resnet_rejects_bad_depth():
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(10)


def test_any_module_is_a_backbone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
    bb = as_backbone(net)
    assert bb.out_dim == 16 and bb(torch.rand(3, 3, 32, 32)).shape == (3, 16)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet7'"):
        build_backbone("resnet7")


def test_multihead_per_task():
    h = MultiHead(8)
    h.add(0, 3)
    h.add(1, 5)
    assert h(torch.rand(2, 8), 1).shape == (2, 5) and count_params(h) == 8 * 3 + 3 + 8 * 5 + 5


def test_load_torchvision_style_state_dict_with_prefix_and_fc(tmp_path):
    import torchvision

    src = torchvision.models.resnet18(weights=None)
    state = {f"module.{k}": v for k, v in src.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    bb = build_backbone("resnet18")
    load_weights(bb, tmp_path / "r18.pth")
    assert torch.equal(bb.body.conv1.weight, src.conv1.weight)
    assert torch.equal(bb.body.layer4[1].bn2.running_var, src.layer4[1].bn2.running_var)


def test_load_swav_style_drops_projection_head(tmp_path):
    bb = cifar_resnet(8, 8)
    state = {f"module.{k}": v.clone() + 1 for k, v in bb.body.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.zeros(4, 4)
    state["module.prototypes.weight"] = torch.zeros(4, 4)
    torch.save(state, tmp_path / "swav.pth.tar")
    fresh = cifar_resnet(8, 8)
    load_weights(fresh, tmp_path / "swav.pth.tar", kind="swav")
    assert torch.equal(fresh.body.conv1.weight, bb.body.conv1.weight + 1)


def test_missing_weights_file_says_how_to_get_them(tmp_path):
    with pytest.raises(WeightsError, match="does not exist.*IMAGENET1K"):
        load_weights(build_backbone("resnet50"), tmp_path / "nope.pth")


def test_mismatched_weights_name_the_key(tmp_path):
    torch.save(cifar_resnet(8, 8).body.state_dict(), tmp_path / "w8.pt")
    with pytest.raises(WeightsError, match="conv1.weight has shape"):
        load_weights(cifar_resnet(8, 16), tmp_path / "w8.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a readable torch checkpoint"):
        load_weights(cifar_resnet(8, 16), tmp_path / "junk.pt")


def test_shipped_checkpoint_loads_and_sha_is_checked(tmp_path, monkeypatch):
    entries = shipped_checkpoints()
    assert entries, "the package must ship a pretrained backbone"
    name, entry = next(iter(entries.items()))
    bb = build_backbone("resnet8")
    before = bb.body.conv1.weight.clone()
    load_weights(bb, "shipped")
    assert not torch.equal(before, bb.body.conv1.weight)
    assert W.CHECKPOINT_DIR.joinpath(entry["file"]).stat().st_size < 5e6
    corrupt = tmp_path / "ckpts"
    shutil.copytree(W.CHECKPOINT_DIR, corrupt)
    with open(corrupt / entry["file"], "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    monkeypatch.setattr(W, "CHECKPOINT_DIR", corrupt)
    monkeypatch.setattr(W, "MANIFEST", corrupt / "manifest.json")
    with pytest.raises(WeightsError, match="corrupt: SHA-256"):
        load_weights(build_backbone("resnet8"), name)


def test_shipped_means_the_default_checkpoint_and_every_shipped_file_verifies():
    entries = shipped_checkpoints()
    defaults = [n for n, e in entries.items() if e.get("default") and e["arch"] == "resnet8-w16"]
    assert len(defaults) == 1, f"exactly one default resnet8 checkpoint; manifest: {entries}"
    a, b = build_backbone("resnet8"), build_backbone("resnet8")
    load_weights(a, "shipped")
    load_weights(b, defaults[0])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    for name, e in entries.items():
        assert W.shipped_path(name).stat().st_size < 5e6
        assert e["reproduce"].startswith("python data_scripts/pretrain_backbone.py")
        other = build_backbone("resnet8")
        load_weights(other, name)  # SHA-256 verified, loaded with weights_only
    assert len(entries[defaults[0]]["source_domains"]) >= 15


def test_shipped_is_resolved_in_one_place_for_every_name_of_an_architecture(tmp_path):
    """``shipped_for`` is what the runner, ``load_weights`` and the MDL single-path start use: an
    architecture's two names give the same default, an alias gives its checkpoint, a file gives
    None, and 'shipped' for an architecture with none shipped is an error naming it."""
    from cl_lab.mdl.experiment import MDLConfig, _single_path_weights

    default = W.default_checkpoint("resnet8-w16")
    assert default is not None and W.shipped_for("shipped", "resnet8") == W.shipped_for("shipped", "resnet8-w16") == default
    assert W.shipped_for("resnet8-synth-source-v2", "resnet8") == "resnet8.synth-source-v2"
    assert W.shipped_for(str(tmp_path / "mine.pt"), "resnet8") is None
    assert W.shipped_for("shipped", "resnet20", required=False) is None
    with pytest.raises(WeightsError, match="no shipped checkpoint for backbone 'resnet20'"):
        W.shipped_for("shipped", "resnet20")
    with pytest.raises(WeightsError, match="no shipped checkpoint for backbone 'resnet20"):
        load_weights(build_backbone("resnet20"), "shipped")
    assert _single_path_weights(MDLConfig()) == default
    # a name other than 'shipped' is recorded as given (an MDL run made under a checkpoint's first name keeps its
    # directory), and it loads the same checkpoint as its manifest name
    assert _single_path_weights(MDLConfig(single_path_init="resnet8-synth-source")) == "resnet8-synth-source"
    assert W.shipped_for("resnet8-synth-source", "resnet8") == "resnet8.synth-source-v1"
    assert _single_path_weights(MDLConfig(single_path_init="scratch")) is None


def test_pretrain_script_writes_a_loadable_backbone(tmp_path):
    """The script that rebuilds the shipped file runs on CPU (on a few images per domain) and
    writes a body that the runner's loader accepts; the package's manifest is left alone."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("pretrain_backbone", root / "data_scripts/pretrain_backbone.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    before = W.MANIFEST.read_text()
    assert mod.main(["--limit", "48", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert W.MANIFEST.read_text() == before
    bb = build_backbone("resnet8")
    untouched = bb.body.conv1.weight.clone()
    load_weights(bb, tmp_path / "resnet8.synth-source-v3.pt")
    assert not torch.equal(untouched, bb.body.conv1.weight)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    assert torch.equal(mod.translate(x, 0, torch.Generator()), x)
    shifted = mod.translate(x, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="reflect")
    for i in range(2):  # each output is an 8x8 window of the padded image
        assert any(torch.equal(shifted[i], padded[i, :, r: r + 8, c: c + 8]) for r in range(5) for c in range(5))


def test_checkpoints_are_named_arch_tag_and_first_names_stay_aliases(tmp_path, mini):
    """timm-style names; a checkpoint's first name still loads it, and a run started under either
    name is the same run (its directory, hence resuming, unchanged by the rename)."""
    import re

    import cl_lab

    entries = shipped_checkpoints()
    assert all(re.fullmatch(r"[a-z0-9-]+\.[a-z0-9.-]+", n) for n in entries), sorted(entries)
    aliased = {a: n for n, e in entries.items() for a in e.get("aliases", ())}
    assert aliased["resnet8-synth-source-v2"] == "resnet8.synth-source-v2"
    for alias, name in aliased.items():
        a, b = build_backbone("resnet8"), build_backbone("resnet8")
        load_weights(a, alias)
        load_weights(b, name)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
        assert W.recorded_name(name) == W.recorded_name(alias) == alias
    kw = {"epochs": 1, "batch_size": 32, "progress": False, "out": str(tmp_path), "n_tasks": 1}
    old = cl_lab.run("sgd", mini, pretrained="resnet8-synth-source-v2", **kw)
    new = cl_lab.run("sgd", mini, pretrained="resnet8.synth-source-v2", **kw)
    assert new.run_dir == old.run_dir and old.config["pretrained"] == "resnet8-synth-source-v2"
    with pytest.raises(cl_lab.config.ConfigError, match="resnet8.synth-source-v3"):
        cl_lab.run("sgd", mini, pretrained="resnet8.synth-source-v9", **kw)
