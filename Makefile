# One-command entry points. Each target creates the virtual environment on first use.
#   make book   build the HTML book into _build/html
#   make test   lint, then every test: library, exercises, grading, notebooks (ci profile),
#               then builds the book and opens every page in headless Chromium
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export COURSE_OFFLINE ?= 1

.PHONY: install book test lint unit notebooks site release clean

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

site: book
	BOOK_TEST_PREBUILT=1 $(BIN)/pytest tests -m browser

test: lint unit notebooks site

release: $(STAMP)
	$(BIN)/course-grade release

clean:
	rm -rf _build .pytest_cache
