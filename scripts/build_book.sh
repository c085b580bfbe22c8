#!/usr/bin/env bash
# Build the course book into _build/html, treating every Sphinx warning as an error
# (broken references, missing citations, bad toc entries, docstring markup, missing files).
#
#   scripts/build_book.sh            # what `make book` runs
#   PYTHON=/path/to/python scripts/build_book.sh
#   BOOK_INCREMENTAL=1 scripts/build_book.sh   # quicker while writing: re-read changed pages only
#                                              # (warnings of unchanged pages are then not repeated)
#
# Steps: (1) MathJax 3 from the npm registry into _build/npm the first time (the site serves
# it locally, no CDN; later builds work offline), (2) regenerate _toc.yml, exercise pages,
# API pages and the chapter map from the files present (scripts/book_pages.py),
# (3) jupyter-book build with stored notebook outputs (execute_notebooks: off).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
MATHJAX_VERSION=3.2.2

if [ -z "${COURSE_MATHJAX_DIR:-}" ] && [ ! -f _build/npm/node_modules/mathjax/es5/tex-chtml.js ]; then
  command -v npm >/dev/null || { echo "error: npm is needed once to fetch MathJax (apt-get install -y npm)" >&2; exit 1; }
  mkdir -p _build/npm
  npm install --prefix _build/npm --no-save --no-package-lock --no-audit --no-fund \
    --prefer-offline "mathjax@${MATHJAX_VERSION}"
fi

"$PYTHON" scripts/book_pages.py
fresh=(--all)  # fresh environment: every page is re-read, so every warning is reported
if [ "${BOOK_INCREMENTAL:-0}" = 1 ]; then
  fresh=()
else
  rm -rf _build/html  # no stale pages from an earlier build (a removed chapter, ...)
fi
"$(dirname "$PYTHON")/jupyter-book" build . --builder html --warningiserror --keep-going "${fresh[@]}" "$@"
