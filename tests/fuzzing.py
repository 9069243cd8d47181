"""How hard the fuzzing tests (hypothesis) try, and the JSON values they throw: each input
surface's property test says how many examples it draws in `make test`; a longer run asks
for more of every one (see docs/security.md):

    TWOI2C_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -p no:randomly \
        tests/test_fuzz_endpoints.py tests/test_*abuse*.py tests/test_export_secrets.py
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ASKED = os.environ.get("TWOI2C_FUZZ_EXAMPLES")


def fuzz(examples: int) -> settings:
    """Hypothesis settings drawing `examples` examples, or as many as the run asks for."""
    return settings(
        max_examples=int(ASKED) if ASKED else examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,  # each run draws afresh: what one found is kept as a written case, not a file
    )


FUZZ = fuzz(25)  # the hub's endpoints: each example is a request

# any JSON a careless or hostile client could send: the scalars, and lists and objects of them
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
