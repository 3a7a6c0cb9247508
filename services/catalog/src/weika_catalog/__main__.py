"""Run the catalog service: `python -m weika_catalog` or `weika-catalog`."""

from weika_catalog.bootstrap import DEFINITION
from weika_kit.service import main as run_service


def main() -> None:
    run_service(DEFINITION)


if __name__ == "__main__":
    main()
