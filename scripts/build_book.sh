#!/usr/bin/env bash
# Build the course book into _build/html, treating every Sphinx warning as an error
# (broken references, missing citations, bad toc entries, docstring markup, missing files).
#
#   scripts/build_book.sh            # what `make book` runs
#   PYTHON=/path/to/python scripts/build_book.sh
#   BOOK_INCREMENTAL=1 scripts/build_book.sh   # quicker while writing: re-read changed pages only
#                                              # (warnings of unchanged pages are then not repeated)
#
# Steps: (1) the npm packages of package-lock.json (MathJax 3, served by the site, no CDN;
# axe-core for the accessibility audit of tests/test_site.py) into node_modules with `npm ci`,
# when they are missing or the lock file changed (later builds work offline),
# (2) regenerate _toc.yml, exercise pages, API pages and the chapter map from the files present
# (scripts/book_pages.py), (3) check that every chapter's stored outputs still belong to its
# code (scripts/output_freshness.py: changed code cells stop the build, naming the notebook;
# an earlier course_lib is listed here and noted on the page), (4) jupyter-book build with
# stored notebook outputs (execute_notebooks: off).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"

# (COURSE_MATHJAX_DIR: an unpacked mathjax package elsewhere, e.g. for a copy of the book.)
if [ -z "${COURSE_MATHJAX_DIR:-}" ] && { [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  command -v npm >/dev/null || { echo "error: npm is needed once to fetch MathJax and axe-core (apt-get install -y npm)" >&2; exit 1; }
  npm ci --no-audit --no-fund --prefer-offline
fi

"$PYTHON" scripts/book_pages.py
"$PYTHON" scripts/output_freshness.py
fresh=(--all)  # fresh environment: every page is re-read, so every warning is reported
if [ "${BOOK_INCREMENTAL:-0}" = 1 ]; then
  fresh=()
else
  rm -rf _build/html  # no stale pages from an earlier build (a removed chapter, ...)
fi
"$(dirname "$PYTHON")/jupyter-book" build . --builder html --warningiserror --keep-going "${fresh[@]}" "$@"
