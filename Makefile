# The two commands of the README: `make run` (the main job) and `make test` (the whole test suite).
# Both create .venv and install the project into it when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/synth-ddsm
PROFILE ?= tiny

.PHONY: run test install bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[book,dev]"
	touch $@

install: $(VENV)/.installed

## the main job: the synthetic dataset, its tile store and annotated patches, a montage, the benchmarks
run: install
	test -f $(DATA)/dataset.json || $(VENV)/bin/mammossl synth --out $(DATA) --profile $(PROFILE)
	$(VENV)/bin/mammossl tiles --data $(DATA) --profile $(PROFILE) --annotated
	$(PY) -m mammossl_core.bench

## the whole test suite
test: install
	$(PY) -m pytest -q

clean:
	rm -rf data runs book/_build
