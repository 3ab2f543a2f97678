# One entry point per job. Every target installs what it needs first, so
# `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
HOME_DIR ?= ./data

.PHONY: run test check fmt lint typecheck bench bench-quick soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: the demo host, sibling example processes on a LevelDB under ./data
run: $(STAMP)
	$(PY) -m examples.host --home $(HOME_DIR)

## make test: the whole test suite (bounded soak/crash forms included)
test: $(STAMP)
	$(PY) -m pytest

## make check: format, lint, mypy --strict, then the whole test suite
check: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

## make soak: the long forms of the reliability tests (crash, flood, fuzz), with their summary
soak: $(STAMP)
	$(PY) -m pytest tests/reliability -m slow -p no:cacheprovider

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
