# Two commands on a fresh machine with Python 3.11+ and pip:
#   make demo   set everything up, then run the main job (a paper-trading session)
#   make test   set everything up, then run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_HOME ?= .trader-demo

.PHONY: install demo test lint bench clean

$(BIN)/.installed: core/pyproject.toml plugins/dl_lstm/pyproject.toml plugins/dl_transformer/pyproject.toml plugins/ensemble/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e 'core[torch,test,bench]' -e plugins/dl_lstm -e plugins/dl_transformer -e plugins/ensemble
	touch $@

install: $(BIN)/.installed

demo: install
	TRADER_HOME=$(DEMO_HOME) $(BIN)/trader plugins

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install
	$(BIN)/python -m pip install -q ruff && $(BIN)/ruff check core plugins tests bench

clean:
	rm -rf $(VENV) $(DEMO_HOME)
