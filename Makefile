# PicNix: `make demo` sets everything up and runs a replay with a dedup report; `make test` runs
# every test tier against the real local stack.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PICNIX := $(PY) -m infra.cli

.PHONY: setup demo test test-unit lint stack-up stack-down clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(PICNIX) demo

stack-up: setup
	$(PICNIX) stack up
	$(PICNIX) db migrate

stack-down: setup
	$(PICNIX) stack down

test: stack-up
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy schemas producers stream_processors sinks infra scripts web tests

clean:
	rm -rf $(VENV) build *.egg-info
