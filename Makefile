# sweeper: set-up, demo and tests. Every target is idempotent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
LINTED := src models tests benchmarks scripts
# the tests' processes: two, a file per process (PYTEST_PROCS= runs them in one)
PYTEST_PROCS ?= -n 2 --dist loadfile

.PHONY: setup demo test test-fast lint style bench clean

setup: $(STAMP)

# pyproject.toml takes a torch range; constraints.txt pins this machine's (the local wheels).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: pip install -e .[dev] into $(VENV) (log: $(VENV)/pip.log)"
	@$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]" \
	  >$(VENV)/pip.log 2>&1 || { tail -n 20 $(VENV)/pip.log; exit 1; }
	rm -f $(VENV)/.installed-* && touch $@

# A small real sweep: 4 MLPs x 2 epochs on a slice of Fashion-MNIST (about a minute).
demo: setup
	$(BIN)/sweeper run sweeps/quickstart.yaml --force-new
	$(BIN)/sweeper status quickstart

# CI runs this (.ci/run): ruff first, then every test, with mypy beside the tests (it fails
# the target at the end). The Debian packages the tests use (scripts/ensure-system.sh: apt,
# a minute or so on a fresh machine) install in the background beside pip's install of the
# venv (about two minutes); both end before the tests start.
# The tests run in two processes (pytest-xdist), a file's tests in one of them, so a module's
# fixtures (a study, a cluster) are built once. One process leaves a core idle while an
# end-to-end test waits on its drivers and Ray (60-80% of 2 cores each): the whole suite took
# 874 s in one process, 688-709 s in two (98% of both cores; benchmarks/RESULTS.md). OpenMP
# threads wait passively: torch's idle threads sleep instead of spinning against the other
# process's.
test:
	@log=$$(mktemp); scripts/ensure-system.sh >$$log 2>&1 & pid=$$!; \
	  $(MAKE) --no-print-directory style; rc=$$?; wait $$pid; cat $$log; rm -f $$log; exit $$rc
	@log=$$(mktemp); echo "$(BIN)/mypy (beside the tests; its report follows them)"; \
	  $(BIN)/mypy >$$log 2>&1 & pid=$$!; \
	  OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q --durations=15 $(PYTEST_PROCS); rc=$$?; \
	  wait $$pid || rc=1; cat $$log; rm -f $$log; exit $$rc

test-fast: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_PROCS)

lint: style
	$(BIN)/mypy

style: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

clean:
	rm -rf $(VENV) runs .cache .pytest_cache .mypy_cache
