#!/usr/bin/python3
"""Checks docker-compose.yml beyond its schema: that it would start a working Tandem stack.

There is no Docker engine in CI, so the stack cannot be started there. Instead:
  1. `docker-compose config` (Debian's docker-compose) validates the file against the Compose schema and
     resolves anchors, merges and ${VAR:-default} interpolation;
  2. on the resolved file, every TANDEM_* variable must be a flag of the binary the service runs (read from
     its --help), every file a variable names must exist under the service's mounts, every address must name
     a service and the port that service listens on, published ports stay on 127.0.0.1, and Prometheus'
     scrape targets and Grafana's data source point at the right services;
  3. the Prometheus configuration, as the container sees it through its mounts, passes `promtool check config`.

usage: check_compose.py --bin-dir build/bin [--compose docker-compose.yml [--compose override.yml]]
                        [--project-dir DIR]
Prints one `ERROR service: problem` line per problem and exits 1, or `ok: ...` and exits 0.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

BINARIES = ("tandem", "tandem-cloud", "tandem-edge", "tandem-scheduler")
# Flags without which each service refuses to start (or, for keys, runs without CURVE).
REQUIRED_ENV = {
    "tandem-cloud": ("TANDEM_MODEL", "TANDEM_SERVER_KEY", "TANDEM_ALLOW_CLIENTS"),
    "tandem-edge": ("TANDEM_MODEL", "TANDEM_TOKENIZER", "TANDEM_CLOUD", "TANDEM_CLOUD_KEY", "TANDEM_CLIENT_KEY"),
    "tandem-scheduler": (),
}
# The variable holding the HOST:PORT each service serves HTTP (health, metrics) on.
HTTP_ENV = {"tandem-cloud": "TANDEM_HTTP", "tandem-edge": "TANDEM_LISTEN", "tandem-scheduler": "TANDEM_LISTEN"}
PROMETHEUS_JOB = {"tandem-cloud": "tandem-cloud", "tandem-edge": "tandem-edge", "tandem-scheduler": "tandem-scheduler"}


class Checker:
    def __init__(self, compose_files, bin_dir, project_dir=None):
        if isinstance(compose_files, str):
            compose_files = [compose_files]
        self.compose_files = [os.path.abspath(path) for path in compose_files]
        self.project_dir = os.path.abspath(project_dir or os.path.dirname(self.compose_files[0]))
        self.bin_dir = bin_dir
        self.errors = []
        self.flag_env = {}

    def error(self, where, problem):
        self.errors.append(f"ERROR {where}: {problem}")

    # --- loading -------------------------------------------------------------------------------------
    def resolved(self):
        if shutil.which("docker-compose") is None:
            sys.exit("check_compose: docker-compose is missing (Debian package docker-compose; "
                     "scripts/install-deps.sh installs it)")
        files = [argument for path in self.compose_files for argument in ("-f", path)]
        run = subprocess.run(["docker-compose", "--project-directory", self.project_dir, *files, "config"],
                             capture_output=True, text=True, cwd=self.project_dir)
        if run.returncode != 0:
            names = " + ".join(os.path.basename(path) for path in self.compose_files)
            self.error(names, "docker-compose config: " + run.stderr.strip())
            return None
        return yaml.safe_load(run.stdout)

    def env_names_of(self, binary):
        """The TANDEM_* names the binary reads, from the `[env NAME]` notes of its --help."""
        if binary not in self.flag_env:
            path = os.path.join(self.bin_dir, binary)
            # --help loads LibTorch (most of a second): keep its answer beside the build until it is rebuilt.
            cache = os.path.join(self.bin_dir, "..", "deploy", f"{binary}.help")
            if not os.path.exists(cache) or os.path.getmtime(cache) < os.path.getmtime(path):
                run = subprocess.run([path, "--help"], capture_output=True, text=True)
                os.makedirs(os.path.dirname(cache), exist_ok=True)
                with open(cache, "w") as out:
                    out.write(run.stdout + run.stderr)
            self.flag_env[binary] = set(re.findall(r"\[env (TANDEM_[A-Z0-9_]+)\]", open(cache).read()))
            if not self.flag_env[binary]:
                sys.exit(f"check_compose: {path} --help lists no [env TANDEM_...] flags (is it built?)")
        return self.flag_env[binary]

    # --- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def binary_of(service):
        argv = (service.get("entrypoint") or []) + (service.get("command") or [])
        if isinstance(argv, str):
            argv = argv.split()
        return argv[0] if argv else None, argv

    @staticmethod
    def is_tandem(service):
        return str(service.get("image", "")).startswith("tandem:")

    @staticmethod
    def mounts(service):
        """(source, target, kind, read_only) of each volume entry, short or long syntax."""
        result = []
        for volume in service.get("volumes") or []:
            if isinstance(volume, str):
                parts = volume.split(":")
                source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
                read_only = len(parts) > 2 and "ro" in parts[2].split(",")
                kind = "bind" if source and (source.startswith("/") or source.startswith(".")) else "volume"
            else:
                source, target = volume.get("source"), volume.get("target")
                kind, read_only = volume.get("type", "volume"), bool(volume.get("read_only"))
            result.append((source, target, kind, read_only))
        return result

    def host_path(self, service, container_path):
        """Where a container path of the service comes from: ("bind", host path), ("volume", name,
        relative path) or None when no mount covers it."""
        best = None
        for source, target, kind, _ in self.mounts(service):
            if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
                if best is None or len(target) > len(best[1]):
                    best = (source, target, kind)
        if best is None:
            return None
        source, target, kind = best
        rest = os.path.relpath(container_path, target) if container_path != target else ""
        if kind == "bind":
            base = source if os.path.isabs(source) else os.path.join(self.project_dir, source)
            return ("bind", os.path.normpath(os.path.join(base, rest)))
        return ("volume", source, rest)

    @staticmethod
    def address(value):
        """HOST, PORT of `tcp://HOST:PORT` or `HOST:PORT`."""
        match = re.fullmatch(r"(?:tcp://)?([^:/]+):(\d+)", value.strip())
        return (match.group(1), int(match.group(2))) if match else None

    # --- checks ----------------------------------------------------------------------------------------
    def check_file_exists(self, name, service, services, variable, path):
        where = self.host_path(service, path)
        if where is None:
            self.error(name, f"{variable}={path}: no volume is mounted there")
        elif where[0] == "bind":
            if not os.path.exists(where[1]):
                self.error(name, f"{variable}={path}: {where[1]} does not exist")
        else:
            # A named volume: some service must write the file into it (the keygen service).
            volume, rest = where[1], where[2]
            stem = os.path.splitext(os.path.basename(rest))[0]
            # `tandem tls-selfsigned --out PREFIX` writes PREFIX-ca.pem, PREFIX-cert.pem, PREFIX-key.pem, ...
            prefixed = re.compile(r"tls-selfsigned --out \"?" + re.escape(stem.rsplit("-", 1)[0]) + r"\b")
            writers = [other for other_name, other in services.items() if other_name != name and any(
                source == volume and not read_only for source, _, kind, read_only in self.mounts(other))]
            scripts = [json.dumps(other.get("command", "")) + json.dumps(other.get("entrypoint", ""))
                       for other in writers]
            if not any(stem in script or prefixed.search(script) for script in scripts):
                self.error(name, f"{variable}={path}: nothing writes {rest} into volume '{volume}'")

    def check_tandem_service(self, name, service, services):
        binary, argv = self.binary_of(service)
        if binary in ("/bin/sh", "sh", "/bin/bash", "bash"):
            return  # a script (the keygen service); its files are checked where they are used
        if binary not in BINARIES:
            self.error(name, f"runs '{binary}', which the image does not have ({', '.join(BINARIES)})")
            return
        if any(arg.startswith("--") for arg in argv[1:]):
            self.error(name, "configure it with TANDEM_* variables, not flags: " + " ".join(argv))
        environment = service.get("environment") or {}
        known = self.env_names_of(binary)
        for variable, value in environment.items():
            if variable.startswith("TANDEM_") and variable not in known:
                self.error(name, f"{variable} is not a flag of {binary} (see {binary} --help)")
            elif variable.startswith("TANDEM_") and str(value).startswith("/"):
                self.check_file_exists(name, service, services, variable, str(value))
        for variable in REQUIRED_ENV.get(binary, ()):
            if variable not in environment:
                self.error(name, f"{binary} needs {variable}")
        self.check_addresses(name, environment, services)
        http = self.address(str(environment.get(HTTP_ENV.get(binary), "")))
        if http and http[0] != "0.0.0.0":
            self.error(name, f"{HTTP_ENV[binary]}={environment[HTTP_ENV[binary]]}: other containers and "
                             "Prometheus cannot reach it; bind 0.0.0.0 inside the container")
        test = " ".join(str(part) for part in (service.get("healthcheck") or {}).get("test") or [])
        probed = re.search(r"127\.0\.0\.1:(\d+)/", test)
        if http and (probed is None or int(probed.group(1)) != http[1]):
            self.error(name, f"the healthcheck ({test or 'none'}) does not probe the HTTP port {http[1]}")

    def listening_port(self, service, kind):
        """The port a tandem service listens on for `kind` = "zmq" or "http"."""
        binary, _ = self.binary_of(service)
        environment = service.get("environment") or {}
        variable = "TANDEM_BIND" if kind == "zmq" and binary == "tandem-cloud" else HTTP_ENV.get(binary)
        parsed = self.address(str(environment.get(variable, ""))) if variable else None
        return parsed[1] if parsed else None

    def check_addresses(self, name, environment, services):
        wanted = {"TANDEM_CLOUD": ("tandem-cloud", "zmq"), "TANDEM_ADVERTISE": ("tandem-cloud", "zmq"),
                  "TANDEM_SCHEDULER": ("tandem-scheduler", "http")}
        for variable, (binary, kind) in wanted.items():
            for value in str(environment.get(variable, "")).split(",") if variable in environment else []:
                parsed = self.address(value)
                if parsed is None:
                    self.error(name, f"{variable}: '{value}' is not HOST:PORT")
                    continue
                host, port = parsed
                target = services.get(host)
                if target is None or self.binary_of(target)[0] != binary:
                    self.error(name, f"{variable}: '{host}' is not a {binary} service")
                elif self.listening_port(target, kind) != port:
                    self.error(name, f"{variable}: {host} listens on {self.listening_port(target, kind)}, "
                                     f"not {port}")
                elif variable == "TANDEM_ADVERTISE" and host != name:
                    self.error(name, f"TANDEM_ADVERTISE names {host}, not this service")

    def check_ports(self, name, service):
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else (
                port.split(":")[0] if port.count(":") == 2 else None)
            if host_ip != "127.0.0.1":
                self.error(name, f"published port {port} is not bound to 127.0.0.1")

    def check_bind_mounts(self, name, service):
        for source, target, kind, _ in self.mounts(service):
            if kind == "bind":
                path = source if os.path.isabs(source) else os.path.join(self.project_dir, source)
                if not os.path.exists(path):
                    self.error(name, f"mount {source}:{target}: {path} does not exist")

    def container_view(self, service, directory):
        """Copies what the service's bind mounts put under `directory` into a temp dir laid out as the
        container sees it; returns (temp dir, its path for `directory`)."""
        root = tempfile.mkdtemp(prefix="compose-view-")
        for source, target, kind, _ in self.mounts(service):
            if kind != "bind" or not (target == directory or target.startswith(directory.rstrip("/") + "/")):
                continue
            host = source if os.path.isabs(source) else os.path.join(self.project_dir, source)
            destination = os.path.join(root, target.lstrip("/"))
            if os.path.isdir(host):
                shutil.copytree(host, destination, dirs_exist_ok=True)
            elif os.path.exists(host):
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                shutil.copy(host, destination)
        return root, os.path.join(root, directory.lstrip("/"))

    def check_prometheus(self, name, service, services):
        config_path = next((arg.split("=", 1)[1] for arg in service.get("command") or []
                            if str(arg).startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
        root, config_dir = self.container_view(service, os.path.dirname(config_path))
        try:
            local_config = os.path.join(root, config_path.lstrip("/"))
            if not os.path.exists(local_config):
                self.error(name, f"{config_path} is not mounted")
                return
            if shutil.which("promtool"):
                run = subprocess.run(["promtool", "check", "config", local_config], capture_output=True, text=True)
                if run.returncode != 0:
                    self.error(name, "promtool check config: " + (run.stdout + run.stderr).strip().replace(root, ""))
            else:
                self.error(name, "promtool is missing (Debian package prometheus)")
            config = yaml.safe_load(open(local_config))
            scraped = {}
            for job in config.get("scrape_configs") or []:
                targets = [target for static in job.get("static_configs") or [] for target in static.get("targets", [])]
                for file_sd in job.get("file_sd_configs") or []:
                    for pattern in file_sd.get("files", []):
                        path = os.path.join(config_dir, pattern)
                        if os.path.exists(path):
                            targets += [t for group in yaml.safe_load(open(path)) or [] for t in group.get("targets", [])]
                for target in targets:
                    scraped.setdefault(job["job_name"], []).append(target)
                    host, port = self.address(target) or (target, None)
                    other = services.get(host)
                    if other is None:
                        self.error(name, f"scrape target {target} (job {job['job_name']}) is not a service")
                    elif self.is_tandem(other) and self.listening_port(other, "http") != port:
                        self.error(name, f"scrape target {target}: {host} serves /metrics on "
                                         f"{self.listening_port(other, 'http')}")
            for other_name, other in services.items():
                binary = self.binary_of(other)[0]
                job = PROMETHEUS_JOB.get(binary)
                if job and "TANDEM_TLS_CERT" in (other.get("environment") or {}):
                    job += "-https"  # scraped over TLS, with the CA
                if job and not any(t.startswith(other_name + ":") for t in scraped.get(job, [])):
                    self.error(name, f"{other_name} ({binary}) is not scraped by job {job}")
        finally:
            shutil.rmtree(root)

    def check_grafana(self, name, service, services):
        root, provisioning = self.container_view(service, "/etc/grafana/provisioning")
        try:
            datasources = [source for path in _yaml_files(os.path.join(provisioning, "datasources"))
                           for source in (yaml.safe_load(open(path)) or {}).get("datasources", [])]
            if not any(source.get("type") == "prometheus" for source in datasources):
                self.error(name, "no Prometheus data source is provisioned")
            for source in datasources:
                match = re.fullmatch(r"https?://([^:/]+):(\d+)/?", str(source.get("url", "")))
                prometheus = services.get(match.group(1)) if match else None
                listen = next((arg.split("=", 1)[1] for arg in (prometheus or {}).get("command") or []
                               if str(arg).startswith("--web.listen-address=")), ":9090")
                if prometheus is None or not listen.endswith(":" + match.group(2)):
                    self.error(name, f"data source url {source.get('url')} is not the Prometheus service")
            providers = [provider for path in _yaml_files(os.path.join(provisioning, "dashboards"))
                         for provider in (yaml.safe_load(open(path)) or {}).get("providers", [])]
            if not providers:
                self.error(name, "no dashboard provider is provisioned")
            for provider in providers:
                folder = provider.get("options", {}).get("path", "")
                dashboards = [target for source, target, kind, _ in self.mounts(service)
                              if target.startswith(folder.rstrip("/") + "/") and target.endswith(".json")]
                if not dashboards:
                    self.error(name, f"no dashboard JSON is mounted under {folder}")
                for target in dashboards:
                    path = self.host_path(service, target)[1]
                    try:
                        json.load(open(path))
                    except (OSError, ValueError) as problem:
                        self.error(name, f"dashboard {target}: {problem}")
        finally:
            shutil.rmtree(root)

    def run(self):
        config = self.resolved()
        if config is None:
            return self.errors
        services = config.get("services") or {}
        tails = [n for n, s in services.items() if self.binary_of(s)[0] == "tandem-cloud"]
        if len(tails) < 2:
            self.error("services", f"{len(tails)} cloud tail(s): the stack shows failover with two")
        for binary in ("tandem-scheduler", "tandem-edge"):
            if not any(self.binary_of(s)[0] == binary for s in services.values()):
                self.error("services", f"no service runs {binary}")
        if not any("prometheus" in str(s.get("image", "")) for s in services.values()):
            self.error("services", "no prometheus service")
        for name, service in services.items():
            self.check_ports(name, service)
            self.check_bind_mounts(name, service)
            if self.is_tandem(service):
                self.check_tandem_service(name, service, services)
            elif "prometheus" in str(service.get("image", "")):
                self.check_prometheus(name, service, services)
            elif "grafana" in str(service.get("image", "")):
                self.check_grafana(name, service, services)
        self.summary = f"ok: {len(services)} services ({', '.join(services)})"
        return self.errors


def _yaml_files(directory):
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, f) for f in sorted(os.listdir(directory)) if f.endswith((".yml", ".yaml"))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", action="append",
                        help="a compose file; several are merged in order (default: docker-compose.yml)")
    parser.add_argument("--project-dir", help="what relative paths are relative to (default: the file's folder)")
    parser.add_argument("--bin-dir", required=True, help="where tandem-cloud, tandem-edge, ... are built")
    args = parser.parse_args()
    checker = Checker(args.compose or ["docker-compose.yml"], args.bin_dir, args.project_dir)
    errors = checker.run()
    for line in errors:
        print(line)
    if errors:
        return 1
    print(checker.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
