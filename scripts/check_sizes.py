#!/usr/bin/env python3
"""Fails when a source file outside tests passes 700 lines or a function passes 120 (issue 23: no god files).

Function extents come from Universal Ctags (`ctags --fields=+ne`: the line a definition starts and ends
on), so a lambda counts within the function that holds it. Usage: check_sizes.py [REPO_ROOT]; prints the
largest files and functions and one line per violation, exits 1 if any.
"""
import json
import pathlib
import subprocess
import sys

MAX_FILE_LINES = 700
MAX_FUNCTION_LINES = 120
# Library and component folders; tests, fuzz targets and benchmarks are outside the limits.
FOLDERS = ["base", "kernels", "model", "text", "wire", "engine", "services", "netem", "scheduler",
           "edge-agent", "cloud-tail", "cli"]
SOURCES = {".cpp", ".hpp", ".h", ".cc"}


def source_files(root: pathlib.Path):
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in SOURCES and "tests" not in path.relative_to(root).parts:
                yield path


def functions(root: pathlib.Path, files):
    command = ["ctags", "--output-format=json", "--fields=+ne", "--kinds-C++=f", "--language-force=C++",
               "-f", "-"] + [str(f.relative_to(root)) for f in files]
    output = subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout
    for line in output.splitlines():
        tag = json.loads(line)
        if tag.get("_type") == "tag" and "end" in tag:
            scope = "::".join(part for part in tag.get("scope", "").split("::") if not part.startswith("__anon"))
            yield tag["end"] - tag["line"] + 1, f'{tag["path"]}:{tag["line"]}', \
                f'{scope}::{tag["name"]}' if scope else tag["name"]


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    files = list(source_files(root))
    sizes = sorted(((len(f.read_text(errors="replace").splitlines()), f.relative_to(root).as_posix())
                    for f in files), reverse=True)
    spans = sorted(functions(root, files), reverse=True)
    print(f"largest files (limit {MAX_FILE_LINES} lines):")
    for lines, name in sizes[:5]:
        print(f"  {lines:5d} {name}")
    print(f"longest functions (limit {MAX_FUNCTION_LINES} lines):")
    for lines, where, name in spans[:5]:
        print(f"  {lines:5d} {where} {name}")
    found = [f"{name}: {lines} lines (limit {MAX_FILE_LINES})" for lines, name in sizes if lines > MAX_FILE_LINES]
    found += [f"{where}: {name} is {lines} lines (limit {MAX_FUNCTION_LINES})"
              for lines, where, name in spans if lines > MAX_FUNCTION_LINES]
    for line in found:
        print(line)
    print(f"sizes: {len(files)} files, {len(spans)} functions, {len(found)} over the limits")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
