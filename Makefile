# The two set-up commands of the README: `make run` and `make test`. Both create .venv/ and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench openapi clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	CDS_AUTH=$${CDS_AUTH:-off} CDS_PUBLIC_URL=$${CDS_PUBLIC_URL:-http://127.0.0.1:8080} \
	  $(BIN)/cds-service serve --host 127.0.0.1 --port 8080

test: lint
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check cds_service tests bench
	$(BIN)/ruff format --check cds_service tests bench
	$(BIN)/mypy cds_service

format: $(STAMP)
	$(BIN)/ruff check --fix cds_service tests bench
	$(BIN)/ruff format cds_service tests bench

openapi: $(STAMP)
	$(BIN)/cds-service openapi > openapi.yaml

# `make bench ARGS="--quick --only W1"`: ARGS goes to bench/run.py (make itself would take --quick as its own option).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
