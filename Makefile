# restnet-compile: `make demo` builds the demo bundle, `make test` runs the tests.
# Both create .venv and install the pinned dependencies on first use; later runs reuse it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= phone

.PHONY: install demo test test-unit test-slow test-extended bench docs lint pretrain clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[compile,dev,ray]'
	# torchvision 0.28.0 matches torch 2.13 but is a CUDA build: --no-deps keeps pip from replacing the CPU torch
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps torchvision==0.28.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/restnet-compile build --profile $(PROFILE) --out dist

# The unit tier (every stage alone on tiny models, about 1.5 minutes) then the integration tier (real builds);
# property tests draw 200 examples here, 50 in the unit tier alone.
test: $(STAMP)
	$(BIN)/python -m pytest -q --hypothesis-profile=thorough tests/unit tests/integration

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Every torchvision classification family through a .safetensors round trip, and foreign architectures' estimated
# size and RAM against their exported files: long sweeps, kept out of CI's time budget.
test-extended: $(STAMP)
	$(BIN)/python -m pytest -q -m extended

# Benchmarks print and write JSON ratios measured side by side in one run (bench/results/), then bench/README.md
# is regenerated from them (bench_fashion.py reads Debian's dataset-fashion-mnist files). The commands are the
# page's sections' (tests/unit/test_docs.py keeps them equal); the page lists the benchmarks this target does not
# run, and why.
bench: $(STAMP)
	$(BIN)/python bench/bench_cka.py
	$(BIN)/python bench/bench_stitch_tuning.py --epochs 10 --train 3000
	$(BIN)/python bench/bench_stitch_tuning.py --epochs 10 --train 8000 --dataset mnist10k --out bench/results/stitch_tuning_mnist10k.json
	$(BIN)/python bench/bench_stitch_tuning.py --epochs 3 --train 1500 --out bench/results/stitch_tuning_3ep.json
	$(BIN)/python bench/bench_all_pairs.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_segments.py
	$(BIN)/python bench/bench_switch.py
	$(BIN)/python bench/bench_latency.py --out bench/results/latency.json
	$(BIN)/python bench/bench_profiles.py
	$(BIN)/python bench/bench_fail_fast.py
	$(BIN)/python bench/bench_fleet.py
	$(BIN)/python bench/bench_family.py
	$(BIN)/python bench/bench_fashion.py
	$(BIN)/python bench/bench_ray.py
	$(BIN)/python bench/bench_cluster.py --epochs 40 --candidates 4 --dataset mnist10k
	$(BIN)/python bench/bench_stream_memory.py
	$(BIN)/python bench/bench_feature_store.py
	$(BIN)/python bench/gen_readme.py

# Generated pages: bench/README.md from bench/results/ (a test checks that it is up to date).
docs: $(STAMP)
	$(BIN)/python bench/gen_readme.py

# Style, types ([tool.mypy] in pyproject.toml: the whole package, strict on api, cli, bundle, pipeline and runtime),
# then the layer contracts of [tool.importlinter].
lint: $(STAMP)
	$(BIN)/ruff check restnet_compile tests bench scripts examples
	$(BIN)/ruff format --check restnet_compile
	$(BIN)/mypy
	$(BIN)/lint-imports

pretrain: $(STAMP)
	$(BIN)/python scripts/pretrain_demo_zoo.py

clean:
	rm -rf dist .pytest_cache
