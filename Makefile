# One-command entry points. Each target creates the virtual environment on first use.
#   make book   build the HTML book into _build/html
#   make test   lint, then every test: library, exercises, grading, notebooks (ci profile),
#               the gpu profile's code path on CPU (fixture data), then builds the book and
#               opens every page in headless Chromium
#   make gpu-check   on a CUDA machine without network: scripts/gpu_check.sh (see README)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export COURSE_OFFLINE ?= 1
# Wall clock per graded submission in the grading tests (only the infinite-loop exploit uses it up).
export COURSE_GRADE_TEST_TIMEOUT ?= 120

.PHONY: install book test lint unit notebooks notebooks-gpu-profile site release gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -c "import course_lib, torchvision; print('course_lib ready, torchvision', torchvision.__version__)"
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	PYTHON=$(BIN)/python scripts/build_book.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/pytest tests -m "not browser" -n 2 --dist loadfile

notebooks: $(STAMP)
	COURSE_PROFILE=ci $(BIN)/pytest --nbval-lax -p no:cacheprovider -n 2 --dist loadfile book

# Every chapter's gpu branch on CPU: COURSE_PROFILE=gpu with COURSE_SCALE=tiny (the ci sizes) on
# CIFAR/MNIST fixture files in torchvision's formats, written to a temporary folder; cells run,
# stored outputs (cpu profile) are not compared; nothing is written.
notebooks-gpu-profile: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -m tests.fixtures.torchvision_files "$$tmp" && \
	COURSE_PROFILE=gpu COURSE_SCALE=tiny COURSE_OFFLINE=1 COURSE_DATA="$$tmp/data" \
	IPYTHONDIR="$$tmp/ipython" PYTHONPATH=. $(BIN)/pytest --nbval-lax -p tests.nbval_execute_only \
	  -p no:cacheprovider -n 2 --dist loadfile book

site: book
	BOOK_TEST_PREBUILT=1 $(BIN)/pytest tests -m browser

gpu-check:
	bash scripts/gpu_check.sh

test: lint unit notebooks notebooks-gpu-profile site

release: $(STAMP)
	$(BIN)/course-grade release

clean:
	rm -rf _build .pytest_cache
