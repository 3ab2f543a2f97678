# One entry point per job. Every target installs what it needs first, so
# `make run` and `make test` work on a fresh machine (a fresh clone included).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.created
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
HOME_DIR ?= ./data

.PHONY: run test check fmt lint typecheck bench bench-quick bench-startup bench-profile redis-server soak clean \
	redis-server-required \
	rust-crates conformance-client chromium

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $(VENV_STAMP)

# The compiled helpers (setup.py, issue 12): a changed C source reinstalls, which rebuilds it.
EXT_SOURCES := setup.py $(wildcard protocol/*.c kvruntime/*/*.c)

# The extensions need a C compiler and Python's headers: Debian's gcc (and
# python3-dev when the interpreter has no Python.h) when missing. Without them
# pip falls back to the Python twins, and the suite's tests of the build fail.
C_TOOLCHAIN = command -v cc >/dev/null 2>&1 && \
	$(PY) -c "import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" || \
	{ apt-get update -qq && apt-get install -y -qq gcc python3-dev >/dev/null; } || \
	echo "no C compiler could be installed: kvruntime runs on its pure-Python blob code"

# `make run` needs the package alone: no server, no test or benchmark tools.
$(RUN_STAMP): $(VENV_STAMP) pyproject.toml $(EXT_SOURCES)
	@$(C_TOOLCHAIN)
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

# Everything the suite imports: the dev tools, and the bench group (peers,
# chart, profiler), since the suite tests the benchmark harness and mypy
# checks benchmarks/ against their real types.
$(DEV_STAMP): $(VENV_STAMP) pyproject.toml $(EXT_SOURCES)
	@$(C_TOOLCHAIN)
	$(PY) -m pip install --quiet -e '.[dev,bench,network]'
	touch $(DEV_STAMP)

# redis-server from Debian, only when it is not on PATH already.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || \
		echo "redis-server could not be installed: the benchmark reports redis as missing"

# The suite's Redis Cluster tests need redis-server: installed, or `make test` fails.
redis-server-required:
	@command -v redis-server >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || \
		{ echo "redis-server could not be installed: the Redis Cluster tests need it" >&2; exit 1; }

# The Rust conformance client (conformance/hyperware-kv) builds offline from
# Debian's packaged crates (crates.io is not reachable): apt-get installs them
# under /usr/share/cargo/registry, and Debian's cargo too when none is on PATH.
CARGO_REGISTRY := /usr/share/cargo/registry
RUST_CRATE_PACKAGES := librust-serde-dev librust-serde-derive-dev librust-serde-json-dev \
	librust-rmp-serde-dev librust-serde-bytes-dev
RUST_CRATE_DIRS := serde-1 serde_derive-1 serde_json-1 rmp-serde-1 serde_bytes-0.11

rust-crates:
	@missing=; for crate in $(RUST_CRATE_DIRS); do \
		ls -d $(CARGO_REGISTRY)/$$crate.* >/dev/null 2>&1 || missing="$$missing $$crate"; \
	done; \
	command -v cargo >/dev/null 2>&1 || missing="$$missing cargo"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && apt-get install -y -qq $(RUST_CRATE_PACKAGES) \
			$$(command -v cargo >/dev/null 2>&1 || echo cargo) >/dev/null; \
	fi

## make conformance-client: build the Rust client that speaks Hyperware's kv types (offline)
conformance-client: rust-crates
	cd conformance/hyperware-kv && cargo build --offline --release

.PHONY: run-nodes
# `make run-nodes` needs the package with its network extra (nats-py, PyNaCl).
NODES_STAMP := $(VENV)/.installed-nodes
$(NODES_STAMP): $(VENV_STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[network]'
	touch $(NODES_STAMP)

## make run-nodes: two nodes in two processes on a local nats-server (a ping, a chat, kv refusing)
run-nodes: $(NODES_STAMP) nats-server
	$(PY) -m examples.nodes

## make run: the demo host, sibling example processes on a LevelDB under ./data
run: $(RUN_STAMP)
	$(PY) -m examples.host --home $(HOME_DIR)

# --- issue 13: the demo on a Redis Cluster -------------------------------------
.PHONY: run-cluster
CLUSTER_STAMP := $(VENV)/.installed-cluster
$(CLUSTER_STAMP): $(VENV_STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[redis-cluster]'
	touch $(CLUSTER_STAMP)

## make run-cluster: start a local Redis Cluster, run the demo (as `make run`) on it, stop it
run-cluster: $(CLUSTER_STAMP) redis-server-required
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		$(PY) -m kvruntime.storage.localcluster "$$tmp/cluster" -- \
		$(PY) -m examples.host --home "$$tmp/home"

# Debian's chromium, for the explorer's browser tests (Playwright drives it;
# `playwright install` cannot download a browser here). A failed install
# stops `make test` with apt-get's reason.
chromium:
	@command -v /usr/bin/chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "chromium could not be installed (apt-get failed): the explorer tests need it"; exit 1; }

# Debian's nats-server, for the many-nodes tests (issue 17). A failed install
# stops `make test` with apt-get's reason: the tests never skip a missing server.
.PHONY: nats-server
test: nats-server
nats-server:
	@command -v nats-server >/dev/null 2>&1 || test -x /usr/sbin/nats-server || \
		{ apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; } || \
		{ echo "nats-server could not be installed (apt-get failed): the network tests need it"; exit 1; }
	@{ command -v openssl && command -v ip; } >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq openssl iproute2 >/dev/null; } || \
		{ echo "openssl/iproute2 could not be installed: the TLS and netns tests need them"; exit 1; }

## make test: the whole test suite (bounded soak/crash forms included), with
## the Rust conformance client it runs against a live runtime; two pytest
## workers per core, at most 4 (many tests wait on processes and servers, not
## the CPU; each worker starts its own servers); an idle worker takes
## tests from a busy one's queue (worksteal: no worker idles at the end)
## The suite starts hundreds of Python processes (CLI, examples, nodes, crash
## drivers): each reuses the bytecode the first compiled (__pycache__, which
## git ignores), even where PYTHONDONTWRITEBYTECODE is set around make.
TEST_WORKERS := $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n * 2 < 4 ? n * 2 : 4 )))
test: $(DEV_STAMP) conformance-client chromium redis-server-required
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

## make check: format, lint and mypy --strict (`make test` runs the tests)
check: $(DEV_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## make soak: the long forms of the reliability tests (crash, flood, fuzz), with their summary
soak: $(DEV_STAMP)
	$(PY) -m pytest tests/reliability -m slow -p no:cacheprovider

## make bench: kvruntime side by side with plyvel, pykka, redis and SQLite (minutes)
bench: $(DEV_STAMP) redis-server
	$(PY) -m benchmarks --out benchmarks/results
	$(PY) -m benchmarks.watch_latency  # change feeds beside Redis streams (issue 14)
	$(PY) -m benchmarks.watch_lag  # a watcher behind the fastest single writer, 1M changes (issue 14)
	# issue 13: kvruntime on a local Redis Cluster beside redis-py's cluster client
	$(PY) -m benchmarks.cluster --out benchmarks/results

# issue 17: the remote rows (two nodes on one nats-server beside raw nats-py), run first.
.PHONY: bench-network
bench: bench-network
## make bench-network: remote echo/get/set through two nodes vs raw nats-py request/reply
bench-network: $(DEV_STAMP) nats-server
	$(PY) -m benchmarks.network

## make bench-quick: the same run with ~20x smaller counts (CI; no speed assertion)
bench-quick: $(DEV_STAMP) redis-server
	$(PY) -m benchmarks --quick --out $(or $(BENCH_OUT),.bench-quick)
	$(PY) -m benchmarks.watch_lag --quick  # 50k changes (issue 14)
	$(PY) -m benchmarks.cluster --quick --out $(or $(BENCH_OUT),.bench-quick)

## make bench-startup: the median of `kvruntime get` over 20 fresh processes vs `python -c pass`
bench-startup: $(DEV_STAMP)
	$(PY) -m benchmarks.startup

## make bench-profile: cProfile of kvruntime's sequential set, top functions by self time
bench-profile: $(DEV_STAMP)
	$(PY) -m benchmarks.profile

fmt: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench-quick \
		conformance/hyperware-kv/target
