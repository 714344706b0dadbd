"""The JSON answer as a contract: its schema is committed, one file per version, and printed from that file.

Changing `Answer` changes its generated schema; the test suite then fails until SCHEMA_VERSION is raised and the
new schema is written with `python -m vesalius.agent.schema --write`, so a consumer can rely on a version number.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

SCHEMA_VERSION = "8"


def schema_file(version: str = SCHEMA_VERSION):
    return resources.files("vesalius") / "schemas" / f"answer.v{version}.json"


def committed_schema(version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The committed schema of `version` (reading it needs neither pydantic's models nor the agent)."""
    return json.loads(schema_file(version).read_text())


def generated_schema() -> dict[str, Any]:
    from vesalius.agent.answer import Answer

    return Answer.model_json_schema()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m vesalius.agent.schema --write")
    path = schema_file()
    with resources.as_file(path) as target:
        target.write_text(json.dumps(generated_schema(), indent=2) + "\n")
    print(f"wrote {path}")
