# The two commands of the README: `make book` (the main job) and `make test` (the whole test suite).
# Both create .venv and install the project into it when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= tiny

.PHONY: book test install browser bench clean constraints nbval nbval-record confirm confirm-check

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[book,dev]"
	touch $@

install: $(VENV)/.installed

## headless Chromium from Debian for the browser test (never `playwright install`)
browser:
	@test -x /usr/bin/chromium || (command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "no Chromium: the browser test will be skipped")

## the main job: execute every chapter notebook at the tiny profile with papermill, then build the HTML book
book: install
	$(VENV)/bin/mammossl book all --profile $(PROFILE)

## the whole test suite: unit tests, every notebook at the paper profile (capped), the book (executed once), the
## regression test of its findings against tests/expected/, the browser test, nbval on the chapter notebooks, and
## the committed confirmatory result set against a re-execution of its first replicate
test: install browser
	$(PY) -m pytest -q -m "not book and not paper" tests
	$(PY) -m pytest -q -m paper --durations=0 tests
	$(MAKE) book
	$(PY) -m pytest -q -m book tests
	$(MAKE) nbval
	$(MAKE) confirm-check

## nbval: execute every chapter notebook (the artefacts that `make book` cached are reused) and compare the cells
## tagged nbval-check-output with their recorded outputs; notebooks/nbval_sanitize.cfg says what may differ
nbval: install
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks

## after a change to a checked cell's output: record the executed book's outputs as nbval's references
nbval-record: book
	$(VENV)/bin/mammossl book nbval-record

## the pre-registered confirmatory run (about an hour on 2 CPU cores; resumable) into book/confirmatory/: commit it, then make book
confirm: install
	$(VENV)/bin/mammossl book confirm

## re-execute the committed confirmatory set's replicate 0 of the primary claim and compare (nothing without a set)
confirm-check: install
	$(VENV)/bin/mammossl book confirm-check

bench: install
	$(PY) benchmarks/cpu.py

clean:
	rm -rf data runs .cache book/_build book/chapters book/_failed

## after an upgrade of the dependencies: record the versions that produced the recorded findings
constraints: install
	{ head -n 2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^mammossl'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
