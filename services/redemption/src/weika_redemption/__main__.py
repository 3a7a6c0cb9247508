"""Run the redemption service: `python -m weika_redemption` or `weika-redemption`."""

from weika_kit.service import main as run_service
from weika_redemption.bootstrap import DEFINITION


def main() -> None:
    run_service(DEFINITION)


if __name__ == "__main__":
    main()
