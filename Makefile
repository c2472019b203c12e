# Every target sets itself up: it creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# what `make setup` installs: everything the tests use by default; students need only EXTRAS=lab
EXTRAS ?= lab,dev,scale,grading,tracking
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
OUT ?= runs
EPOCHS ?= 4
METHODS ?= sgd sgd-ll clr

.PHONY: setup run train test lab labs grade lint clean-runs

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
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
LABS ?=
CL_LAB_REQUIREMENT ?=

## Course labs: student versions (solutions stripped) and autograder zips -> $(LABS_OUT)/<lab>/
## (CL_LAB_REQUIREMENT='cl_lab @ git+https://...' names cl_lab for the grading image instead of a bundled wheel)
labs: $(STAMP)
	$(PY) -m cl_lab.lab.labs --out $(LABS_OUT) $(LABS) $(if $(CL_LAB_REQUIREMENT),--cl-lab-requirement '$(CL_LAB_REQUIREMENT)')

SUBMISSIONS ?=
LAB ?= lab1_forgetting
WORKERS ?=
TIMEOUT ?= 300
GRADEBOOK ?= build/grades/gradebook-$(LAB).csv

## Grade a folder of submissions (.ipynb or export zips) to one lab, in parallel -> $(GRADEBOOK)
## (builds the lab first when it has no autograder zip). It runs the students' code as you: see the README.
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=dir [LAB=$(LAB) WORKERS=n TIMEOUT=$(TIMEOUT)]"; exit 2; }
	@ls $(LABS_OUT)/$(LAB)/autograder/$(LAB)-autograder_*.zip >/dev/null 2>&1 || \
		$(PY) -m cl_lab.lab.labs --out $(LABS_OUT) $(LAB)
	$(PY) -m cl_lab.lab.grade $(SUBMISSIONS) --lab $(LAB) --labs-dir $(LABS_OUT) --out $(GRADEBOOK) \
		--timeout $(TIMEOUT) $(if $(WORKERS),--workers $(WORKERS))
