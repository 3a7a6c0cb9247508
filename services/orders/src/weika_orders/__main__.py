"""Run the orders service: `python -m weika_orders` or `weika-orders`."""

from weika_kit.service import main as run_service
from weika_orders.bootstrap import DEFINITION


def main() -> None:
    run_service(DEFINITION)


if __name__ == "__main__":
    main()
