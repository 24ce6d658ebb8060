# realcam — set-up, tests, demo and benchmarks. `make test` and `make demo` do all the set-up.
PYTHON ?= python3
VENV ?= .venv
# auto: cuda when nvidia-smi answers, else cpu. Passed to the stages as REALCAM_DEVICE.
DEVICE ?= auto
TORCH_VERSION ?= 2.13.0
# Extra pip arguments for torch, e.g. --index-url https://download.pytorch.org/whl/cpu
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?= -q
DEMO_OUT ?= demo_out
# e.g. DEMO_ARGS="--store video": the demo's training clips as lossless clip videos
DEMO_ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ifeq ($(DEVICE),auto)
RESOLVED_DEVICE := $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
else
RESOLVED_DEVICE := $(DEVICE)
endif
export REALCAM_DEVICE := $(RESOLVED_DEVICE)
export MESA_SHADER_CACHE_DISABLE := true
# DeepSpeed builds a small op on first use; keep it between runs.
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/realcam/torch_extensions

.PHONY: setup sysdeps lint format test demo docs-media bench clean

setup: $(STAMP)

# System packages, installed where we may (root with apt-get): libusb for Open3D's wheel, and
# Chromium for the editor's end-to-end browser test (without it that one test is skipped).
SYSTEM_PACKAGES ?= libusb-1.0-0 chromium
sysdeps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q libusb-1.0 || missing="$$missing libusb-1.0-0"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	missing=$$(for p in $$missing; do case " $(SYSTEM_PACKAGES) " in *" $$p "*) echo $$p;; esac; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:" $$missing; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null; } || \
	    echo "warning: could not install" $$missing; \
	  else echo "warning: missing system packages:" $$missing "(Debian: apt-get install" $$missing")"; fi; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a CPU machine takes the CPU build, a CUDA machine the CUDA build.
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q -e ".[test,ray]"
	touch $(STAMP)

# ruff: lint and format check (configured in pyproject.toml); `make format` rewrites in place.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) examples/demo.py --out $(DEMO_OUT) $(DEMO_ARGS)

# The README's preview GIF and trajectory plot, made by the demo's own `preview --gif` and `evaluate --plot`.
docs-media: setup
	$(PY) examples/demo.py --out $(DEMO_OUT) --media docs/media

bench: setup
	$(PY) benchmarks/bench_cli_startup.py
	$(PY) benchmarks/bench_fetch.py
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/check_metric_scale.py
	$(PY) benchmarks/bench_triangulate.py
	$(PY) benchmarks/bench_depth.py
	$(PY) benchmarks/bench_preview.py
	$(PY) benchmarks/bench_edit.py
	$(PY) benchmarks/bench_model_step.py
	$(PY) benchmarks/bench_train_step.py --res tiny
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_evaluate.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache

# ---------------------------------------------------------------------------------------------
# Batch runs over a RealEstate10K-layout dataset (cameras/<clip>.txt, frames/<clip>/*.png or
# videos/<clip>.mp4), starting from the release's camera files with `make fetch`.
# Each stage's output table is a file target, so `make` redoes only what changed, and every stage
# skips clips it has already finished. Shard the per-clip stages over machines with SHARD/NSHARDS
# (for example a Slurm array: SHARD=$SLURM_ARRAY_TASK_ID NSHARDS=$SLURM_ARRAY_TASK_COUNT), then run
# `make scales filtered` once when every shard is done. See README.md, "Batch runs".
DATASET ?= data/realestate10k
WORK ?= work
SHARD ?= 0
NSHARDS ?= 1
GPUS ?= 1
RES ?= 256
WORKERS ?= 2
STEPS ?= 50000
DEPTH_ARGS ?=
TRAIN_ARGS ?=
RELEASE ?= RealEstate10K
FETCH_ARGS ?=
REALCAM := $(VENV)/bin/realcam
sfm_status = $(WORK)/sfm/$(if $(filter 1,$(NSHARDS)),status.parquet,status.shard-$(1)-of-$(NSHARDS).parquet)
ALL_SHARDS := $(shell seq 0 $$(($(NSHARDS) - 1)))
CAMERA_FILES := $(shell find $(DATASET)/cameras -name '*.txt' 2>/dev/null)
RELEASE_FILES := $(shell find $(RELEASE) -name '*.txt' 2>/dev/null)
fetch_table = $(DATASET)/$(if $(filter 1,$(NSHARDS)),fetch.parquet,fetch.shard-$(1)-of-$(NSHARDS).parquet)

.PHONY: fetch batch depth triangulate scales filtered train-batch

# The release's camera files (RELEASE/<split>/<clip>.txt) -> DATASET; FETCH_ARGS e.g.
# "--videos /shared/re10k_videos --store video --crf 18".
fetch: $(call fetch_table,$(SHARD))
$(DATASET)/fetch%parquet: $(RELEASE_FILES) | setup
	$(REALCAM) fetch $(RELEASE) --out $(DATASET) --workers $(WORKERS) \
	  $(if $(filter 1,$(NSHARDS)),,--shard $(patsubst .shard-%-of-$(NSHARDS).,%,$*)/$(NSHARDS)) $(FETCH_ARGS)

batch: filtered

depth: $(WORK)/depth/index.parquet
$(WORK)/depth/index.parquet: $(CAMERA_FILES) | setup
	$(REALCAM) depth $(DATASET) --out $(WORK)/depth $(DEPTH_ARGS)

triangulate: $(call sfm_status,$(SHARD))
$(WORK)/sfm/status%parquet: $(CAMERA_FILES) | setup
	$(REALCAM) triangulate $(DATASET) --out $(WORK)/sfm --workers $(WORKERS) \
	  $(if $(filter 1,$(NSHARDS)),,--shard $(patsubst .shard-%-of-$(NSHARDS).,%,$*)/$(NSHARDS))

scales: $(WORK)/scales/clips.parquet
$(WORK)/scales/clips.parquet: $(WORK)/depth/index.parquet $(foreach i,$(ALL_SHARDS),$(call sfm_status,$(i))) | setup
	$(REALCAM) align-scale --depth $(WORK)/depth --sfm $(WORK)/sfm --out $(WORK)/scales

filtered: $(WORK)/filtered/keep.parquet
$(WORK)/filtered/keep.parquet: $(WORK)/scales/clips.parquet | setup
	$(REALCAM) filter $(WORK)/scales --cameras $(DATASET) --out $(WORK)/filtered

train-batch: $(WORK)/runs/$(RES)/metrics.parquet
$(WORK)/runs/$(RES)/metrics.parquet: $(WORK)/filtered/keep.parquet | setup
	$(REALCAM) train --data $(WORK)/filtered --frames $(DATASET) --res $(RES) --gpus $(GPUS) \
	  --steps $(STEPS) --out $(WORK)/runs/$(RES) $(TRAIN_ARGS)
