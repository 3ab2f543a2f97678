# One entry point per job. Every target installs what it needs first, so
# `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
HOME_DIR ?= ./data

.PHONY: run test check fmt lint typecheck bench bench-quick bench-profile redis-server soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The bench group (peers, chart, profiler) on top of dev; mypy checks benchmarks/
# against their real types, so `make check` installs it too.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# redis-server from Debian, only when it is not on PATH already.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || \
		echo "redis-server could not be installed: the benchmark reports redis as missing"

## make run: the demo host, sibling example processes on a LevelDB under ./data
run: $(STAMP)
	$(PY) -m examples.host --home $(HOME_DIR)

## make test: the whole test suite (bounded soak/crash forms included)
test: $(STAMP)
	$(PY) -m pytest

## make check: format, lint, mypy --strict, then the whole test suite
check: $(STAMP) $(BENCH_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

## make soak: the long forms of the reliability tests (crash, flood, fuzz), with their summary
soak: $(STAMP)
	$(PY) -m pytest tests/reliability -m slow -p no:cacheprovider

## make bench: kvruntime side by side with plyvel, pykka, redis and SQLite (minutes)
bench: $(BENCH_STAMP) redis-server
	$(PY) -m benchmarks --out benchmarks/results

## make bench-quick: the same run with ~20x smaller counts (CI; no speed assertion)
bench-quick: $(BENCH_STAMP) redis-server
	$(PY) -m benchmarks --quick --out $(or $(BENCH_OUT),.bench-quick)

## make bench-profile: cProfile of kvruntime's sequential set, top functions by self time
bench-profile: $(BENCH_STAMP)
	$(PY) -m benchmarks.profile

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench-quick
