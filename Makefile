# The two commands of the README are `make reproduce` and `make test`; the rest are helpers.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
STAMP := $(VENV)/.invdiff-installed
# torch/torchvision are pinned here (not only in settings.ini) so pip takes the matching pair it has on disk.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# make test runs one pytest-xdist worker per core; the tests that start Jupyter kernels, and the DDP test, share one worker (tests/conftest.py).
TEST_WORKERS ?= auto

.PHONY: reproduce test install export clean-nbs readme lab docs publish bench gpu-check help

help:
	@echo "make reproduce [PROFILE=smoke|cpu|gpu]  run every notebook with papermill into runs/<profile>/"
	@echo "make test                               install if needed, then run the whole test suite"
	@echo "make docs [PROFILE=...]                 render the executed notebooks of runs/<profile>/ into runs/<profile>/course/"
	@echo "make export | clean-nbs | readme | lab | publish PROFILE=..."
	@echo "make bench [BENCH_ARGS=...]             training/sampling benchmark against plain diffusers (runs/bench.json)"
	@echo "make gpu-check [GPU_CHECK_ARGS=...]     one GPU, <= 9 min: bench + gpu profiles, writes reports/gpu/ (--dry-run: on the CPU)"

$(STAMP): settings.ini setup.py pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m invdiff_nb.reproduce --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

export: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python -m invdiff_nb.reproduce --write-readme

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

readme: $(STAMP)
	$(BIN)/python -m invdiff_nb.reproduce --write-readme

lab: $(STAMP)
	$(BIN)/jupyter lab nbs

# the rendered course: the executed notebooks of runs/<profile>/ as a static HTML site, runs/<profile>/course/index.html
docs: $(STAMP)
	$(BIN)/python -m invdiff_nb.reproduce --profile $(PROFILE) --report-only --docs

# copy the light parts of runs/<profile>/ (report, results.json, figures, the rendered course) into reports/<profile>/
publish: $(STAMP)
	$(BIN)/python -m invdiff_nb.reproduce --profile $(PROFILE) --report-only --docs --publish
	$(BIN)/python -m invdiff_nb.reproduce --write-readme

# training / sampling benchmark of our fast path against plain diffusers (bench.json); BENCH_ARGS e.g. --profile gpu
bench: $(STAMP)
	mkdir -p runs
	$(BIN)/python -m invdiff_nb.bench --out runs/bench.json $(BENCH_ARGS)

# the one-call GPU check (<= 9 minutes on one H100/H200): 60_bench and 15_ddpm_digits under the gpu profile (and
# 51_invdiff_waterbirds with GPU_CHECK_ARGS="--invdiff-profile NAME"), published to reports/gpu/;
# GPU_CHECK_ARGS=--dry-run runs the same code on the CPU under the smoke profile
gpu-check: $(STAMP)
	$(BIN)/python -m invdiff_nb.bench --gpu-check $(GPU_CHECK_ARGS)
