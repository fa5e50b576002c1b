#!/usr/bin/python3
"""Checks the Dockerfile statically, without a container engine (`make deploy-smoke` builds and runs it).

  * every stage is Debian 12 (or built on one that is); a stage packaging prebuilt binaries copies the
    runtime stage's, on its base; the build stage installs with scripts/install-deps.sh --build-only and builds
    with tests off exactly the binaries the runtime stage copies;
  * every COPY source exists in the build context and is not excluded by .dockerignore;
  * the runtime stage installs, by name, the Debian package of every shared library the binaries load
    (their DT_NEEDED entries, resolved on this machine with ldconfig and dpkg), plus libopenblas0-pthread
    (LibTorch's fast BLAS) and curl (the health check), and every package it names exists in Debian;
  * it runs as a non-root USER and has a HEALTHCHECK.

usage: check_dockerfile.py --bin-dir build/bin [--dockerfile Dockerfile] [--context DIR]
Prints one `ERROR Dockerfile: problem` line per problem and exits 1, or `ok: ...` and exits 0.
"""
import argparse
import fnmatch
import os
import re
import shlex
import subprocess
import sys

# Every Debian image has these (the C library and its unwinder); the rest must be installed by name.
IN_EVERY_IMAGE = {"libc6", "libgcc-s1"}
ALSO_REQUIRED = {"libopenblas0-pthread", "curl"}


def instructions(path):
    """(line number, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, pending, start = [], "", 0
    for number, line in enumerate(open(path), 1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, rest = text.partition(" ")
        result.append((start, keyword.upper(), rest.strip()))
    return result


def stages(steps):
    """[{name, base, steps}] in order; a base named by an ARG before the first FROM is its default."""
    result, defaults = [], {}
    for number, keyword, rest in steps:
        if keyword == "ARG" and not result and "=" in rest:
            name, _, value = rest.partition("=")
            defaults[name.strip()] = value.strip()
        if keyword == "FROM":
            words = re.sub(r"\$\{?(\w+)\}?", lambda match: defaults.get(match.group(1), match.group(0)), rest).split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(result))
            result.append({"name": name, "base": words[0], "line": number, "steps": []})
        elif result:
            result[-1]["steps"].append((number, keyword, rest))
    return result


def apt_packages(run_text):
    """The packages of every `apt-get install` in a RUN line."""
    packages = []
    for command in re.split(r"&&|;", run_text):
        words = shlex.split(command)
        if "apt-get" in words and "install" in words:
            packages += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return packages


def needed_libraries(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def packages_of(libraries):
    """{library: Debian package} for the libraries this machine's loader finds (one ldconfig, one dpkg)."""
    paths = {}
    for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        name = name.split(" (")[0]
        if name in libraries and not re.search(r"/(lib32|libx32)/", path):  # this architecture's copy
            paths.setdefault(name, path)
    # With merged /usr a file is known to dpkg under /lib or /usr/lib: ask for both spellings.
    candidates = {}
    for name, path in paths.items():
        for spelling in {path, os.path.realpath(path), path.removeprefix("/usr"), "/usr" + path}:
            candidates[spelling] = name
    run = subprocess.run(["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True)
    owners = {}
    for line in run.stdout.splitlines():
        owner, _, path = line.partition(": ")
        if path in candidates:
            owners.setdefault(candidates[path], owner.split(", ")[0].split(":")[0])
    return owners


def debian_packages(names):
    """The names among `names` that Debian's package lists know."""
    run = subprocess.run(["apt-cache", "show", "--no-all-versions", *names], capture_output=True, text=True)
    return set(re.findall(r"^Package: (\S+)$", run.stdout, re.MULTILINE))


def dockerignored(path, patterns):
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def check(dockerfile, bin_dir, context=None):
    """(problems, summary)."""
    errors = []
    context = context or os.path.dirname(os.path.abspath(dockerfile))
    ignore_file = os.path.join(context, ".dockerignore")
    ignored = [l.strip() for l in open(ignore_file) if l.strip() and not l.startswith("#")] \
        if os.path.exists(ignore_file) else []
    if not ignored:
        errors.append("there is no .dockerignore: the whole tree, build directories included, is sent")
    all_stages = stages(instructions(dockerfile))
    if len(all_stages) < 2:
        return errors + [f"{len(all_stages)} stage(s): want a build stage and a runtime stage"], ""
    build, runtime = all_stages[0], all_stages[-1]
    by_name = {stage["name"]: stage for stage in all_stages}
    for stage in all_stages:
        if stage["base"] in by_name:
            continue  # built on an earlier stage, checked there
        if not re.fullmatch(r"(docker\.io/library/)?debian:12(-slim)?(@sha256:[0-9a-f]+)?", stage["base"]):
            errors.append(f"line {stage['line']}: stage {stage['name']} is based on {stage['base']}, not Debian 12")

    def chain(stage):
        """The stage's steps after those of the earlier stages it is built on."""
        base = by_name.get(stage["base"])
        return (chain(base) if base is not None else []) + stage["steps"]

    build_runs = " ".join(rest for _, keyword, rest in build["steps"] if keyword == "RUN")
    if "install-deps.sh --build-only" not in build_runs:
        errors.append("the build stage does not install with scripts/install-deps.sh --build-only")
    if "-DTANDEM_BUILD_TESTS=OFF" not in build_runs:
        errors.append("the build stage builds the tests (-DTANDEM_BUILD_TESTS=OFF)")
    targets = set(re.findall(r"--target((?:\s+[\w-]+)+)", build_runs)[0].split()) \
        if "--target" in build_runs else set()

    copied, copied_from_context = [], {}
    for stage in all_stages:
        for number, keyword, rest in stage["steps"]:
            if keyword not in ("COPY", "ADD"):
                continue
            words = rest.split()
            from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            sources = [w for w in words if not w.startswith("--")][:-1]
            if from_stage is not None:
                if stage is runtime:
                    copied += [os.path.basename(s) for s in sources]
                elif from_stage not in by_name:  # a named build context (--build-context), not a stage
                    copied_from_context[stage["name"]] = [os.path.basename(s) for s in sources]
                continue
            for source in sources:
                relative = os.path.normpath(source).lstrip("/")
                if relative != "." and not os.path.exists(os.path.join(context, relative)):
                    errors.append(f"line {number}: COPY {source}: no such file in the build context")
                elif relative != "." and dockerignored(relative, ignored):
                    errors.append(f"line {number}: COPY {source}: excluded by .dockerignore")
    for binary in copied:
        if binary not in targets:
            errors.append(f"the runtime stage copies {binary}, which the build stage does not build")
    # A stage that packages binaries built elsewhere must ship the same ones, on the same runtime.
    for name, binaries in copied_from_context.items():
        if sorted(binaries) != sorted(copied):
            errors.append(f"stage {name} copies {', '.join(binaries)}, not the runtime stage's {', '.join(copied)}")
        if by_name[name]["base"] != runtime["base"]:
            errors.append(f"stage {name} is built on {by_name[name]['base']}, not on {runtime['base']} as the runtime")

    runtime_steps = chain(runtime)
    installed = set()
    for _, keyword, rest in runtime_steps:
        if keyword == "RUN":
            installed.update(apt_packages(rest))
    required = {}
    for binary in copied:
        path = os.path.join(bin_dir, binary)
        if not os.path.exists(path):
            errors.append(f"{path} is not built: cannot read the libraries it needs")
            continue
        libraries = needed_libraries(path)
        owners = packages_of(set(libraries))
        for library in libraries:
            package = owners.get(library)
            if package is None:
                errors.append(f"{binary} needs {library}, which no installed Debian package provides")
            elif package not in IN_EVERY_IMAGE:
                required.setdefault(package, set()).add(f"{binary}: {library}")
    for package in sorted(set(required) | ALSO_REQUIRED):
        if package not in installed:
            why = ", ".join(sorted(required.get(package, {"required beside the libraries"})))
            errors.append(f"the runtime stage does not install {package} ({why})")
    known = debian_packages(sorted(installed))
    for package in sorted(installed - known):
        errors.append(f"the runtime stage installs {package}, which is not a Debian package")

    user = [rest for _, keyword, rest in runtime_steps if keyword == "USER"]
    if not user or user[-1].split(":")[0] in ("root", "0"):
        errors.append("the runtime stage runs as root: add USER with the unprivileged user")
    if not any(keyword == "HEALTHCHECK" for _, keyword, _ in runtime_steps):
        errors.append("the runtime stage has no HEALTHCHECK")
    root = runtime
    while root["base"] in by_name:
        root = by_name[root["base"]]
    summary = (f"ok: {len(all_stages)} stages, runtime on {root['base']} with {len(installed)} packages "
               f"covering the libraries of {', '.join(copied)}")
    return errors, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dockerfile", default="Dockerfile")
    parser.add_argument("--context", help="the build context (default: the Dockerfile's folder)")
    parser.add_argument("--bin-dir", required=True)
    args = parser.parse_args()
    errors, summary = check(args.dockerfile, args.bin_dir, args.context)
    for problem in errors:
        print(f"ERROR {os.path.basename(args.dockerfile)}: {problem}")
    if errors:
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
