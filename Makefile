# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all lint bench demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The exact pin takes the local CPU wheel; a looser spec would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

# The default run: every correctness test (slow-marked tests, if any, run with `make test-all`).
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(VENV)/bin/moc bench attention --out runs/bench

# Until multi-shot generation lands, the demo previews the shipped 8-shot example scene (why memory is
# needed) and times MoC attention against dense attention at two small sizes.
demo: $(STAMP)
	$(VENV)/bin/moc world preview --script src/moc/world/examples/the_return.toml --out runs/demo/scene
	$(VENV)/bin/moc bench attention --lengths 4k,8k --repeats 2 --out runs/demo/bench
	@echo "demo outputs: runs/demo/scene (mp4, gif, contact sheet) and runs/demo/bench (table.md, timings.png)"

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
