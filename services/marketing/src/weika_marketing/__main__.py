"""Run the marketing service: `python -m weika_marketing` or `weika-marketing`."""

from weika_kit.service import main as run_service
from weika_marketing.bootstrap import DEFINITION


def main() -> None:
    run_service(DEFINITION)


if __name__ == "__main__":
    main()
