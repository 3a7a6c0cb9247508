"""Run the analytics service: `python -m weika_analytics` or `weika-analytics`."""

from weika_analytics.bootstrap import DEFINITION
from weika_kit.service import main as run_service


def main() -> None:
    run_service(DEFINITION)


if __name__ == "__main__":
    main()
