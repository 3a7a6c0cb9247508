"""The analytics service's own metrics, declared once (the kit already counts events consumed per outcome)."""

from prometheus_client import Counter

# The kit's inbox sees only event ids; this shows facts re-sent under a new event id, which it cannot see.
FACTS = Counter(
    "weika_analytics_facts_total",
    "Facts taken from events, by kind and outcome: recorded, or duplicate (already known by its natural key).",
    ["fact", "outcome"],
)
