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
	$(BIN)/python -m pip install -q -e 'core[torch,test,lint,bench,distributed,tune,postgres]' -e plugins/dl_lstm -e plugins/dl_transformer -e plugins/ensemble
	touch $@

install: $(BIN)/.installed

# The main job: a synthetic market with a planted, learnable pattern; a small BiLSTM trained
# (once) on its first eight months; then a paper-trading session on the last three months,
# which the model never saw, through the full engine (risk audit, paper broker, state store).
TRADER := $(BIN)/trader --home $(DEMO_HOME)
DEMO_MARKET := --symbol SYN/USDT --timeframe 1h
DEMO_SPLIT := 2024-09-01

demo: install
	$(TRADER) plugins
	$(TRADER) data synth $(DEMO_MARKET) --bars 8000 --planted-signal 0.3 --seed 0
	$(TRADER) train --plugin dl_lstm $(DEMO_MARKET) --epochs 2 --until $(DEMO_SPLIT) --if-missing --no-progress
	rm -rf $(DEMO_HOME)/strategies/dl_lstm  # a fresh paper account each demo (the model is kept)
	$(TRADER) run --plugin dl_lstm $(DEMO_MARKET) --from $(DEMO_SPLIT) --quiet
	$(TRADER) status --plugin dl_lstm

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

# ruff on everything; mypy on core/src and plugins/*/src (the packages named in pyproject.toml's [tool.mypy]).
lint: install
	$(BIN)/ruff check core plugins tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_HOME)
