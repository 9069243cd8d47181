"""The profile catalog as plain data and pure functions.

Which servers a person may start (profiles filtered by their groups), what a selection
starts (`resolve`), node-share choices, instance capacities, and what a server costs
per hour (`Pricing.hourly`). Both spawners, the
config checks and the services use it; it imports nothing else of this package.
"""

from .budget_answer import BudgetAnswer, BudgetLine
from .instances import INSTANCE_TYPES, GiB, InstanceType, MiB
from .node_share import node_share_choices, user_capacity
from .plain import in_plain_words, plain_resources
from .pricing import HourlyPrice, InstancePrice, PriceTable, Pricing, PricingError, ServerResources
from .profiles import (
    GPU_TYPE_LABELS,
    UNLISTED_SENTINEL,
    UNLISTED_SUFFIX,
    ProfileError,
    available,
    for_the_page,
    initialize,
    is_allowed,
    selection_from_form,
    selection_from_link,
)
from .selection import ResolvedServer, gpu_count, merge_override, parse_bytes, resolve
from .summary import ServerSummary

__all__ = [
    "BudgetAnswer",
    "BudgetLine",
    "in_plain_words",
    "plain_resources",
    "GPU_TYPE_LABELS",
    "HourlyPrice",
    "InstancePrice",
    "PriceTable",
    "Pricing",
    "PricingError",
    "ServerResources",
    "ServerSummary",
    "INSTANCE_TYPES",
    "UNLISTED_SENTINEL",
    "UNLISTED_SUFFIX",
    "GiB",
    "InstanceType",
    "MiB",
    "ProfileError",
    "ResolvedServer",
    "available",
    "for_the_page",
    "gpu_count",
    "initialize",
    "is_allowed",
    "merge_override",
    "node_share_choices",
    "parse_bytes",
    "resolve",
    "selection_from_form",
    "selection_from_link",
    "user_capacity",
]
