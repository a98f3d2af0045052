# Everything runs inside .venv, made from requirements*.txt with the Python on PATH.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast app bench bench-quick report clean-runs help

help:
	@echo "make demo   - install, then train the DCGAN on the bundled digits (a few minutes)"
	@echo "make test   - install, then run the test suite"
	@echo "make app    - install, then start the Streamlit app on the trained runs, at http://127.0.0.1:8501 only"
	@echo "              (other computers: make app ARGS=\"--server.address 0.0.0.0\")"
	@echo "make bench  - install, then benchmark every task (logs/bench/<date>.json and .md; bench-quick: small models)"
	@echo "make report - write docs/results.md (and the bench part of docs/benchmarks.md) from the runs under logs/"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/train_dcgan.py --preset demo --run-name demo $(ARGS)

app: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/streamlit run scripts/app.py --server.maxUploadSize 25 $(ARGS)

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/bench.py $(ARGS)

bench-quick: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/bench.py --quick $(ARGS)

report: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/report.py $(ARGS)

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean-runs:
	rm -rf logs/*/ saved_models/*/
