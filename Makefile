# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE ?= example

.PHONY: install demo test bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# constraints.txt pins the CPU build of torch for this project's machines and CI.
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf $(EXAMPLE)
	$(BIN)/ensemble example $(EXAMPLE)
	cd $(EXAMPLE) && $(abspath $(BIN))/ensemble run

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_averaging.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_weighting.py
	# bench_honesty.py (about 16 min) and bench_real.py (about 4 min) are run by hand

clean:
	rm -rf $(VENV) $(EXAMPLE) .pytest_cache
