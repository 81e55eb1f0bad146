# ytpiped — `make demo` and `make test` work from a clean clone with Python 3.11, make, git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: install test test-quick lint demo demo-web config-example bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## virtualenv in .venv with ytpiped and its dev tools (no torch)

test: install  ## the whole test suite
	$(PY) -m pytest -q

test-quick: install  ## the suite without the tests marked slow (a quick loop while working)
	$(PY) -m pytest -q -m "not slow"

lint: install  ## ruff + mypy --strict on the package
	$(PY) -m ruff check ytpiped tests benchmarks
	$(PY) -m mypy

demo: install  ## the pipeline on bundled sample media
	$(PY) -m ytpiped.demo

demo-web: install  ## the web page of the last demo run (read-only, no daemon)
	$(PY) -m ytpiped --config demo-data/ytpiped.toml web

config-example: install  ## regenerate config/ytpiped.example.toml from ytpiped/config.py
	$(PY) -c "import sys; from ytpiped.config import render_example; sys.stdout.write(render_example())" > config/ytpiped.example.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
