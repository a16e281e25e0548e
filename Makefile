# napari-slicesam: two commands for a fresh clone.
#   make demo   set up .venv and segment five organs of the sample CT (Dice + PNG)
#   make test   set up .venv and run the whole test suite (real LiteMedSAM included)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp
# torch/torchvision pin used on Linux x86_64 (wheels on this project's machines' local disk);
# elsewhere pip resolves the project's own range (torch>=2.1).
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: setup install xvfb demo test test-fast lint format clean screenshots bench bench-speed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@if [ "$$(uname -s)-$$(uname -m)" = "Linux-x86_64" ]; then \
	  echo "installing $(TORCH_PIN)"; $(BIN)/pip install --quiet $(TORCH_PIN); fi
	$(BIN)/pip install --quiet ".[test]"
	@touch $(STAMP)

# Xvfb and the X/OpenGL libraries Qt's xcb platform needs: napari draws only with an X server,
# so GUI tests run under xvfb-run. Installed with apt-get when missing and we are root.
GUI_DEBS := xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
	libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 \
	libxcb-shape0 libgl1 libegl1 libfontconfig1 libdbus-1-3
xvfb:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = "0" ]; then \
	  missing=$$(for p in $(GUI_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then echo "installing $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	      >/dev/null) || echo "warning: could not install $$missing"; fi; \
	elif ! command -v xvfb-run >/dev/null 2>&1; then \
	  echo "warning: xvfb-run not found; GUI tests are skipped without a display"; fi

setup: $(STAMP)

# The package is installed (not editable) so napari finds its manifest exactly as users get it.
install: $(STAMP)
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

demo: install
	$(BIN)/slicesam demo --out demo_output

test: install xvfb
	@if command -v xvfb-run >/dev/null 2>&1 && [ -z "$$DISPLAY" ]; then \
	  xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else $(BIN)/python -m pytest $(PYTEST_ARGS); fi

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format:
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build dist demo_output .pytest_cache

# README screenshots: the napari journey test (open, box, propagate, correct) saves what the
# user sees at each step into docs/images/ (real viewer, Xvfb, real LiteMedSAM).
screenshots: install xvfb
	SLICESAM_SCREENSHOTS=docs/images xvfb-run -a -s "-screen 0 1600x1000x24" \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/_napari/test_journey.py -k user_journey

# Benchmarks (BENCHMARKS.md): accuracy protocols of ../shared/BENCHMARK.md, and CPU speed.
DATA ?= ../shared/datasets
bench: install
	$(BIN)/slicesam bench --data $(DATA) --out bench_output/reported
	$(BIN)/slicesam bench --data $(DATA) --objects validation --out bench_output/validation

bench-speed: install
	$(BIN)/slicesam bench --speed --data $(DATA) --sam --out bench_output/speed
