"""Fail when a pip resolution report installs a package that no requirements file pins exactly.

Usage: check_pins.py REPORT.json REQUIREMENTS.txt... (the report comes from `pip install --dry-run --report`).
The message lists the missing `name==version` lines, ready to paste into the right requirements file.
"""

import json
import re
import sys


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(paths: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for path in paths:
        with open(path) as lines:
            for line in lines:
                name, sep, version = line.split("#")[0].split(";")[0].strip().partition("==")
                if sep:
                    pins[_name(name)] = version.strip()
    return pins


def main(report_path: str, requirement_paths: list[str]) -> int:
    with open(report_path) as report:
        resolved = {_name(i["metadata"]["name"]): i["metadata"]["version"] for i in json.load(report)["install"]}
    pins = pinned(requirement_paths)
    missing = sorted(f"{name}=={version}" for name, version in resolved.items() if pins.get(name) != version)
    if missing:
        print("resolved but not pinned in " + ", ".join(requirement_paths) + ":", *missing, sep="\n  ", file=sys.stderr)
        return 1
    print(f"all {len(resolved)} resolved packages are pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
