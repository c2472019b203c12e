"""synth-10 discriminates: no task falls to colour statistics or to a random frozen network, and
the test and validation splits are large enough to measure differences of a few points."""

import pytest
import torch

from cl_lab.data import load_stream
from cl_lab.probes import chance, colour_probe, colour_statistics, random_backbone_probe


@pytest.fixture(scope="module")
def v3():
    return load_stream("synth-10")


def test_colour_statistics_are_21_per_image_and_see_colour():
    x = torch.zeros(2, 3, 8, 8)
    x[1, 0] = 1.0  # an all-red image
    f = colour_statistics(x)
    assert f.shape == (2, 21)
    assert f[1, 0] == 1.0 and f[0, 0] == 0.0  # red channel mean
    assert abs(f[:, 6:].reshape(2, 3, 5).sum(2) - 1).max() < 1e-6  # a histogram per channel
    with pytest.raises(ValueError, match="RGB images"):
        colour_statistics(torch.zeros(2, 1, 8, 8))


def test_every_synth10_task_is_beyond_colour_statistics_and_random_features(v3):
    """Version 3: the colour probe within 0.10 of chance and a random frozen ResNet-8 + linear head
    below 0.90 on every task, real glyphs and digits included."""
    assert v3.meta["version"] == 3
    report = {}
    for task in v3:
        c, ch = colour_probe(task).test, chance(task)
        r = random_backbone_probe(task).test
        report[task.name] = (round(ch, 3), round(c, 3), round(r, 3))
        assert c <= ch + 0.10, f"{task.name}: colour statistics score {c:.3f}, chance {ch:.3f}"
        assert r <= 0.90, f"{task.name}: a random frozen backbone scores {r:.3f}"
    print(report)


def test_the_colour_probe_finds_version_2s_shortcuts():
    """The probe is not blind: on version 2, colour alone solves scenes far above chance."""
    task = next(t for t in load_stream("synth-10@2") if t.name == "scenes")
    assert colour_probe(task).test >= chance(task) + 0.3


def test_synth10_splits_are_large_enough(v3):
    for task in v3:
        assert len(task.val) >= 300, task.name
        # digits: 1,797 real images in all (see streams.DIGITS_V3_FRACTIONS)
        assert len(task.test) >= (750 if task.name == "digits" else 1000), task.name
