"""How hard the fuzzing tests (hypothesis) try: a few examples in `make test`, as many as
asked for in a longer run (see docs/security.md):

    TWOI2C_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -k fuzz -p no:randomly

Every input surface's property test takes its example count from here.
"""

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("TWOI2C_FUZZ_EXAMPLES", "25"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # each run draws afresh: what one found is kept as a written case, not a file
)
