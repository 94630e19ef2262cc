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
	$(BIN)/ensemble avg-ckpt $(EXAMPLE)/runs/bert-a --k 3 --out $(EXAMPLE)/weights/bert-a-top3
	$(BIN)/ensemble avg-ckpt $(EXAMPLE)/runs/bert-b --k 3 --tokenizer $(EXAMPLE)/base --out $(EXAMPLE)/weights/bert-b-top3
	cd $(EXAMPLE) && $(abspath $(BIN))/ensemble predict --model bert-a=weights/bert-a-top3 --model bert-b=weights/bert-b-top3 \
		--data valid=data/valid.csv --data test=data/test.csv
	cd $(EXAMPLE) && $(abspath $(BIN))/ensemble vote --model bert-a=weights/bert-a-top3 --model bert-b=weights/bert-b-top3 \
		--data valid=data/valid.csv --data test=data/test.csv --weights acc --sample-submission data/sample_submission.csv
	cd $(EXAMPLE) && $(abspath $(BIN))/ensemble report --model bert-a=weights/bert-a-top3 --model bert-b=weights/bert-b-top3 \
		--data valid=data/valid.csv --html report.html
	@echo "averaged models in $(EXAMPLE)/weights/, logits cached in $(EXAMPLE)/.ensemble/cache, submission in $(EXAMPLE)/submissions/, report in $(EXAMPLE)/report.html"

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_averaging.py
	$(BIN)/python benchmarks/bench_predict.py

clean:
	rm -rf $(VENV) $(EXAMPLE) .pytest_cache
