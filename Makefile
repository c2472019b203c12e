# Every target sets itself up: it creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= runs
EPOCHS ?= 4
METHODS ?= sgd sgd-ll clr

.PHONY: setup run test lab lint clean-runs

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[lab,dev]"
	touch $(STAMP)

setup: $(STAMP)

## The main job: SGD, SGD-LL and CLR on the embedded offline synth-10 stream; results in $(OUT)/
run: $(STAMP)
	$(VENV)/bin/cl-lab run --method $(METHODS) --stream synth-10 --epochs $(EPOCHS) --out $(OUT)
	$(VENV)/bin/cl-lab summary $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check cl_lab tests benchmarks data_scripts

lab: $(STAMP)
	$(VENV)/bin/jupyter lab
