"""The method contract (``cl_lab.train.contract``) over every registered method, and over the README's
five-minute example. The method list is read when the tests are collected, so a method registered
later is covered without a line here."""

import re
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import pytest

from cl_lab.methods import method_names
from cl_lab.methods.registry import unregister
from cl_lab.train import contract as C

ROOT = Path(__file__).resolve().parents[1]
METHODS = method_names()

KNOWN: dict[tuple[str, str], str] = {}
"""Cost promises a method is known to break (see the reasons); strict, so a fix shows up as a failure here."""


def _methods(promise):
    out = []
    for name in METHODS:
        reason = KNOWN.get((name, promise))
        out.append(pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=C.ContractError, reason=reason))
                   if reason else name)
    return out


@pytest.fixture(scope="module")
def walked():
    """One walk per method, shared by the direct checks."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = C.walk(name)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One uninterrupted run per method (with copies of its directory after tasks 1 and 2), shared by the
    resume checks."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = C.record_run(name, tmp_path_factory.mktemp(f"contract-{name}"), after=(1, 2))
        return cache[name]

    return get


@pytest.mark.parametrize("name", METHODS)
def test_builds_from_its_defaults_and_trains(name, walked):
    C.check_builds(walked(name))


@pytest.mark.parametrize("name", METHODS)
def test_cost_has_one_entry_per_task(name, walked):
    C.check_cost_entries(walked(name))


@pytest.mark.parametrize("name", _methods("backbone"))
def test_cost_backbone_params_is_the_backbone(name, walked):
    C.check_backbone_params(walked(name))


@pytest.mark.parametrize("name", _methods("trainable"))
def test_cost_trainable_params_is_what_the_task_trains(name, walked):
    C.check_trainable_params(walked(name))


@pytest.mark.parametrize("name", _methods("storage"))
def test_cost_accounts_for_everything_stored(name, walked):
    C.check_storage_accounted(walked(name))


@pytest.mark.parametrize("name", METHODS)
def test_train_and_eval_modes_are_respected(name, walked):
    C.check_modes(walked(name))


@pytest.mark.parametrize("name", METHODS)
def test_checkpoint_state_restores_the_method(name, walked):
    C.check_restore(walked(name))


@pytest.mark.parametrize("name", METHODS)
def test_resume_at_the_first_task_boundary_equals_the_uninterrupted_run(name, recorded):
    C.check_resumed(recorded(name), 1)


@pytest.mark.parametrize("name", METHODS)
def test_resume_mid_stream_equals_the_uninterrupted_run(name, recorded):
    C.check_resumed(recorded(name), 2)


# ------------------------------------------------------------------ the README's five-minute example
def readme_example() -> str:
    """The code block of README.md that starts with ``# cl_lab/methods/l2_anchor.py``."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"```python\n(# cl_lab/methods/l2_anchor\.py\n.*?)```", text, re.S)
    assert len(found) == 1, "README.md should hold one code block starting with '# cl_lab/methods/l2_anchor.py'"
    return found[0]


@contextmanager
def registered(source: str, name: str):
    """Run ``source`` as a module of ``cl_lab.methods`` with its method renamed to ``name``; unregister after."""
    renamed, n = re.subn(r'name = "l2-anchor"', f'name = "{name}"', source)
    assert n == 1, "the README example should name its method 'l2-anchor'"
    module_name = f"cl_lab.methods._readme_{name.replace('-', '_')}"
    module = types.ModuleType(module_name)
    module.__package__ = "cl_lab.methods"
    sys.modules[module_name] = module
    try:
        exec(compile(renamed, "README.md", "exec"), module.__dict__)
        yield name
    finally:
        unregister(name)
        sys.modules.pop(module_name, None)


def test_the_readme_example_keeps_the_whole_contract(tmp_path):
    with registered(readme_example(), "readme-l2-anchor") as name:
        C.check_method(name, out=tmp_path)


def test_the_contract_catches_an_anchor_that_a_resume_would_lose(tmp_path):
    """The README example as it was first written: the anchor a plain attribute nobody declared."""
    source = readme_example()
    assert "state_attributes" in source
    lossy = "\n".join(line for line in source.splitlines() if "state_attributes" not in line) + "\n"
    with registered(lossy, "lossy-l2-anchor") as name:
        w = C.walk(name)
        with pytest.raises(C.ContractError, match="attribute 'anchor' is lost"):
            C.check_restore(w)
        rec = C.record_run(name, tmp_path, after=(2,))
        with pytest.raises(C.ContractError, match="resume after task 2"):
            C.check_resumed(rec, 2)
