# The two commands of the README:
#   make main   set up, ingest the embedded sample if missing, run the main algorithm
#   make test   set up and run the whole test suite
# Python 3.10-3.13. `PYTHON=python3.13 make test` sets up and tests in .venv-3.13;
# without PYTHON, .venv is made with python3.11 (or python3).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PYTHON_VERSION),)
$(error $(PYTHON) is not a working Python interpreter; set PYTHON=python3.X (3.10 to 3.13))
endif
ifneq ($(filter environment command,$(firstword $(origin PYTHON))),)
VENV ?= .venv-$(PYTHON_VERSION)
else
VENV ?= .venv
endif
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
