"""The `hwcomp` command line. Each command lives in its own module; errors become one `error:` line."""

from __future__ import annotations

import sys

from .app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
