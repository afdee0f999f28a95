# The two commands of the README:
#   make main   set up, ingest the embedded sample if missing, run the main algorithm
#   make test   set up and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# a project-local zipline root unless the user set one
ZIPLINE_ROOT ?= $(CURDIR)/.zipline
export ZIPLINE_ROOT

.PHONY: main test setup bench clean

main: $(VENV)/.installed
	$(BIN)/factorarb demo --out results

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) results .pytest_cache
