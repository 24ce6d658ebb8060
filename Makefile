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

.PHONY: setup sysdeps test demo bench clean

setup: $(STAMP)

# Open3D's wheel needs libusb at import time; install it where we may (root with apt-get).
sysdeps:
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing libusb-1.0-0 (needed by Open3D)"; \
	    apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libusb-1.0-0 >/dev/null; }; \
	  else echo "warning: libusb-1.0 is missing; install it (Debian: apt-get install libusb-1.0-0) for Open3D"; fi; }

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a CPU machine takes the CPU build, a CUDA machine the CUDA build.
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) examples/demo.py --out $(DEMO_OUT)

bench: setup
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_preview.py
	$(PY) benchmarks/bench_evaluate.py
	$(PY) benchmarks/bench_train_step.py --res tiny

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
