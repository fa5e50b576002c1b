#!/usr/bin/env python3
"""Fails when a C++ source of the repository differs from what clang-format makes of it (.clang-format).

Usage: check_format.py [REPO_ROOT] [--fix]; prints the files that need formatting (`--fix` rewrites them),
exits 1 if any. The files are git's tracked *.cpp/*.hpp when the root is a checkout, else every one found.
"""
import pathlib
import shutil
import subprocess
import sys

SUFFIXES = {".cpp", ".hpp", ".h", ".cc"}
SKIP = {"build", "build-fuzz"}


def sources(root: pathlib.Path):
    listed = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True)
    if listed.returncode == 0:
        paths = [root / line for line in listed.stdout.splitlines()]
    else:
        paths = [p for p in root.rglob("*") if not SKIP.intersection(p.relative_to(root).parts)]
    return sorted(p for p in paths if p.suffix in SUFFIXES and p.is_file())


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--fix"]
    root = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent)
    clang_format = shutil.which("clang-format") or shutil.which("clang-format-14")
    if clang_format is None:
        print("format: clang-format not found (Debian: clang-format)")
        return 1
    files = sources(root)
    unformatted = []
    for path in files:
        formatted = subprocess.run([clang_format, f"--style=file:{root / '.clang-format'}", str(path)],
                                   check=True, capture_output=True, text=True).stdout
        if formatted != path.read_text():
            unformatted.append(path)
            if "--fix" in sys.argv:
                path.write_text(formatted)
    for path in unformatted:
        print(f"{path.relative_to(root)}: not clang-formatted ({'fixed' if '--fix' in sys.argv else 'run scripts/check_format.py --fix'})")
    print(f"format: {len(files)} files, {len(unformatted)} not formatted")
    return 1 if unformatted and "--fix" not in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
