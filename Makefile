VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 50051
DB ?= ./trialplane.db
STAMP := $(VENV)/.installed

.PHONY: install proto run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Regenerates generated/ from protos/ with the pinned grpcio-tools.
proto: $(STAMP)
	$(PY) scripts/gen_protos.py generated

# Local development: no tokens (AUTH= asks for them, writing the first
# admin token to ./trialplane-admin.token).
AUTH ?= --no-auth
run: $(STAMP)
	$(VENV)/bin/trialplane serve --host $(HOST) --port $(PORT) --db $(DB) $(AUTH)

# With TRIALPLANE_TEST_POSTGRES_DSN (as .ci/run sets it) the storage suite
# covers PostgreSQL too, and the API and end-to-end suites run a second time
# with their servers on PostgreSQL.
test: $(STAMP)
	$(PY) -m pytest
	@if [ -n "$$TRIALPLANE_TEST_POSTGRES_DSN" ]; then \
		echo "API and end-to-end suites on PostgreSQL"; \
		TRIALPLANE_TEST_BACKEND=postgres $(PY) -m pytest tests/api tests/e2e; \
	fi

# buf checks protoc-built images, so google/api imports resolve offline
# (scripts/buf_check.py says why). buf breaking compares with HEAD when
# protos/ has uncommitted changes, else with HEAD~1; BREAKING_AGAINST=<ref>
# picks another base (origin/main for a whole branch).
BREAKING_AGAINST ?=

lint: $(STAMP)
	$(PY) scripts/buf_check.py lint
	$(PY) scripts/buf_check.py breaking $(if $(BREAKING_AGAINST),--against $(BREAKING_AGAINST))
	$(VENV)/bin/ruff check server clients tests bench scripts examples
	$(VENV)/bin/mypy

# Every bench/*_bench.py prints a table of medians beside the limits it is compared with.
# With BENCH_POSTGRES_DSN (default: TRIALPLANE_TEST_POSTGRES_DSN) the benches that take
# --postgres run a second time on it, so both backends print one after the other.
BENCH_POSTGRES_DSN ?= $(TRIALPLANE_TEST_POSTGRES_DSN)
POSTGRES_BENCHES := bench/metrics_bench.py bench/profiler_bench.py bench/replicas_bench.py bench/retention_bench.py bench/search_driver_bench.py

bench: $(STAMP)
	for script in bench/*_bench.py; do $(PY) $$script || exit 1; done
	@if [ -n "$(BENCH_POSTGRES_DSN)" ]; then \
		for script in $(POSTGRES_BENCHES); do $(PY) $$script --postgres "$(BENCH_POSTGRES_DSN)" || exit 1; done; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info
