# Every target sets itself up: it creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= runs
EPOCHS ?= 4
METHODS ?= sgd sgd-ll clr

.PHONY: setup run train test lab labs lint clean-runs

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[lab,dev,scale,grading]"
	touch $(STAMP)

setup: $(STAMP)

REPORTS ?= reports

## The main job: execute the report notebooks on the embedded offline default -> $(REPORTS)/index.html
run: $(STAMP)
	$(VENV)/bin/cl-lab report --out $(REPORTS)

## SGD, SGD-LL and CLR over the whole synth-10 stream; run directories in $(OUT)/
train: $(STAMP)
	$(VENV)/bin/cl-lab run --method $(METHODS) --stream synth-10 --epochs $(EPOCHS) --out $(OUT)
	$(VENV)/bin/cl-lab summary $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check cl_lab tests benchmarks data_scripts

## JupyterLab on the notebooks (as root it needs --allow-root, added when you are root)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root)

LABS_OUT ?= build/labs

## Course labs: student versions (solutions stripped) and autograder zips -> $(LABS_OUT)/<lab>/
labs: $(STAMP)
	$(PY) -m cl_lab.lab.labs --out $(LABS_OUT)
