import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def zoo_cache(tmp_path_factory):
    """Exports go to a per-session temp cache unless HWCOMP_CACHE is set (then it is reused)."""
    if os.environ.get("HWCOMP_CACHE"):
        yield Path(os.environ["HWCOMP_CACHE"])
        return
    d = tmp_path_factory.mktemp("zoo_cache")
    os.environ["HWCOMP_CACHE"] = str(d)
    try:
        yield d
    finally:
        os.environ.pop("HWCOMP_CACHE", None)
