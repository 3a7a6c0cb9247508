"""Generate the weika-contracts Python package from proto/: messages, type stubs, gRPC stubs, topic registry.

Run by `make proto`; the output under libs/weika-contracts/weika/ is git-ignored and never edited by hand.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
CONTRACTS_DIR = ROOT / "libs" / "weika-contracts"
GENERATED_DIR = CONTRACTS_DIR / "weika"
TOPICS_FILE = PROTO_DIR / "topics.yaml"

CONTRACTS_INIT = (
    '"""Weika\'s contracts as data: topics.yaml, the registry of every Kafka topic (generated)."""\n'
)


def main() -> int:
    protos = sorted(path.relative_to(PROTO_DIR).as_posix() for path in PROTO_DIR.rglob("*.proto"))
    if not protos:
        print(f"no .proto files under {PROTO_DIR}", file=sys.stderr)
        return 1
    # protoc's bundled well-known types (google/protobuf/timestamp.proto and friends).
    well_known = resources.files("grpc_tools") / "_proto"

    if GENERATED_DIR.exists():
        shutil.rmtree(GENERATED_DIR)
    exit_code = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--proto_path={well_known}",
            f"--python_out={CONTRACTS_DIR}",
            f"--pyi_out={CONTRACTS_DIR}",
            f"--grpc_python_out={CONTRACTS_DIR}",
            *protos,
        ]
    )
    if exit_code != 0:
        print(f"protoc failed with exit code {exit_code}", file=sys.stderr)
        return exit_code

    package_data = GENERATED_DIR / "contracts"
    package_data.mkdir(parents=True, exist_ok=True)
    (package_data / "__init__.py").write_text(CONTRACTS_INIT, encoding="utf-8")
    shutil.copyfile(TOPICS_FILE, package_data / "topics.yaml")
    # Last, so a failed run leaves no stamp and make runs it again.
    (GENERATED_DIR / ".generated").touch()
    print(f"generated {len(protos)} proto files into {GENERATED_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
