"""pytest plugin for nbval: execute every notebook cell, compare no stored output.

``make notebooks-gpu-profile`` runs each chapter's ``gpu`` code path on fixture data; the
stored outputs come from the ``cpu`` profile, so even ``# NBVAL_CHECK_OUTPUT`` cells are
expected to differ. A cell that raises still fails (``# NBVAL_RAISES_EXCEPTION`` cells must
still raise). Load it with ``-p tests.nbval_execute_only`` from the repository root.
"""

from __future__ import annotations


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        options = getattr(item, "options", None)  # nbval's IPyNbCell
        if isinstance(options, dict) and "check" in options:
            options["check"] = False
