"""The test package. Importing it (pytest does, before conftest.py) keeps compiled bytecode.

With PYTHONDONTWRITEBYTECODE set (as on the CI machine), every Python process compiles every
module it imports from source: 3-4 s of CPU for caretime and its libraries, paid by the test
run and again by each `caretime serve`, worker or fake-Twilio process a test starts, and
Alembic recompiles the migrations whenever a SQLite app starts. Outside the source tree (what
the variable protects) we keep the bytecode under .pytest_cache/pycache instead, for this
process and, through the environment, for the processes it starts.
"""

import os
import sys
from pathlib import Path

if sys.dont_write_bytecode:
    _default = Path(__file__).resolve().parents[1] / ".pytest_cache" / "pycache"
    sys.pycache_prefix = sys.pycache_prefix or str(_default)
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
