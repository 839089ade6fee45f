# Two entry points for a fresh machine (see README):
#   make repro   install into .venv, then run the whole DVC pipeline (dvc repro)
#   make test    install into .venv, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: install repro test bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

repro: install
	dvc repro

test: install
	python -m pytest -q

bench: install
	python benchmarks/degrade.py
