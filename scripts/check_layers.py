#!/usr/bin/env python3
"""Fails when a component includes a header of, or links, a layer above it (docs/architecture.md,
"Components").

Each folder may include `tandem/<name>/...` only for the names it is allowed below. A new upward include
(say, base including tandem/engine/) is a layering error: the lower library would then need the upper one
to build and link. Usage: check_layers.py [REPO_ROOT]; prints one line per violation, exits 1 if any.
"""
import pathlib
import re
import sys

# folder -> the include namespaces its sources may use (its own included).
ALLOWED = {
    "kernels": {"kernels"},
    "base": {"base"},
    "model": {"base", "model"},
    "text": {"base", "text"},
    "wire": {"base", "model", "wire"},
    "engine": {"base", "kernels", "model", "wire", "engine"},
    "services": {"base", "services"},
    "netem": {"base", "netem"},
    "scheduler": {"base", "model", "wire", "services", "scheduler"},
    "edge-agent": {"base", "kernels", "model", "text", "wire", "engine", "services", "scheduler", "edge_agent"},
    "cloud-tail": {"base", "kernels", "model", "text", "wire", "engine", "services", "scheduler", "cloud_tail"},
}
# Library targets by the include namespace they provide.
TARGETS = {"tandem_kernels": "kernels", "tandem_base": "base", "tandem_model": "model", "tandem_text": "text",
           "tandem_wire": "wire", "tandem_engine": "engine", "tandem_services": "services",
           "tandem_netem": "netem", "tandem_scheduler": "scheduler", "tandem_scheduler_service": "scheduler", "tandem_edge_agent": "edge_agent",
           "tandem_cloud_tail": "cloud_tail"}
LINK = re.compile(r"target_link_libraries\(\s*([A-Za-z0-9_-]+)([^)]*)\)", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]tandem/([a-z_]+)/')
SOURCES = {".cpp", ".hpp", ".h", ".cc"}


def violations(root: pathlib.Path):
    for folder, allowed in ALLOWED.items():
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.suffix not in SOURCES:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                match = INCLUDE.match(line)
                if match and match.group(1) not in allowed:
                    yield f"{relative}:{number}: {folder} may not include tandem/{match.group(1)}/ " \
                          f"(allowed: {', '.join(sorted(allowed))})"
        cmake = root / folder / "CMakeLists.txt"
        for target, libraries in LINK.findall(cmake.read_text()):
            for library in re.findall(r"\btandem_[a-z_]+", libraries):
                if library in TARGETS and TARGETS[library] not in allowed:
                    yield f"{folder}/CMakeLists.txt: {target} may not link {library} " \
                          f"(allowed: {', '.join(sorted(allowed))})"


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    found = list(violations(root))
    for line in found:
        print(line)
    if not found:
        print(f"layers: no upward include or link in {', '.join(ALLOWED)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
