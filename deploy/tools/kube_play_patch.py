#!/usr/bin/python3
"""Turns the Helm-rendered chart into manifests `podman kube play` (podman 4.3) can run on one machine.

  kube_play_patch.py RENDERED OUT --host 127.0.0.1 [--extra TEMPLATE] [--var NAME=VALUE ...]
                     [--secret NAME:KEY=FILE ...] [--volumes-out FILE]

Used by scripts/kube-smoke.sh. Each change below says what kube play lacks. What it keeps: the chart's tail
and scheduler Deployments (containers, init containers, env, volumes, security contexts) and the ConfigMaps
and Secrets they mount. --extra adds more manifests (the edge Pod) after $NAME substitution from --var;
--secret adds a Secret like `kubectl create secret generic NAME --from-file=KEY=FILE` would. --volumes-out
lists the podman volumes the play will create (one a line), for the caller to remove after `kube down`.
"""
import argparse
import string
import sys

import yaml

# Kinds kube play runs (Deployment, Pod) or reads for volumes (ConfigMap, Secret: turned into ConfigMaps
# below). It ignores Services (no cluster DNS, no virtual IPs) and refuses or ignores the rest
# (HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy, ServiceAccount, ServiceMonitor, ...).
KEEP = {"Deployment", "Pod", "ConfigMap", "Secret"}


def secret_to_configmap(doc):
    # podman 4.3 writes a Secret volume's `data` values still base64-encoded (the file holds the base64 text,
    # not the key), ignores `stringData` (empty volume) and panics on a secret volume without `optional`.
    # A ConfigMap volume delivers the text as it is; the init containers copy keys to 0600 files anyway.
    data = dict(doc.get("stringData") or {})
    if doc.get("data"):
        import base64
        for key, value in doc["data"].items():
            data[key] = base64.b64decode(value).decode()
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": doc["metadata"]["name"],
            "labels": doc["metadata"].get("labels", {})}, "data": data}


def patch_env(container, host, ports):
    for env in container.get("env", []):
        name = env["name"]
        if name == "POD_IP":
            # fieldRef status.podIP is refused ("not valid or not supported"); with hostNetwork the pod's
            # address is the host's, and everything here is on loopback.
            env.pop("valueFrom", None)
            env["value"] = host
        elif name == "TANDEM_ADVERTISE":
            # $(VAR) references in env values are not expanded (the tail would advertise "$(POD_IP)").
            env["value"] = env["value"].replace("$(POD_IP)", host)
        elif name == "TANDEM_SCHEDULER":
            # The chart names the scheduler's Service (NAME.NAMESPACE.svc): no Services, no cluster DNS.
            env["value"] = f"{host}:{ports['scheduler']}"
        elif name in ("TANDEM_BIND", "TANDEM_HTTP", "TANDEM_LISTEN"):
            # hostNetwork shares the host's interfaces: listen on loopback only, not 0.0.0.0.
            env["value"] = env["value"].replace("0.0.0.0", host)


def add_volume(volumes, name, kind):
    # emptyDirs and ConfigMaps become podman volumes of one namespace: an emptyDir named like a ConfigMap
    # would share its files.
    if volumes.setdefault(name, kind) != kind:
        sys.exit(f"kube_play_patch: podman volume {name} would be both an emptyDir and a ConfigMap")


def patch_pod_spec(pod_name, spec, host, ports, volumes):
    # No pod network of the chart's kind (no Services, no DNS): every pod uses the host's network, and the
    # free ports the script picked keep clear of other tests.
    spec["hostNetwork"] = True
    # With restartPolicy Always (a Deployment's) podman 4.3 restarts the init container after it exits 0 and
    # then fails the play ("failed to remove once init container ... it is running"). OnFailure runs it once.
    spec["restartPolicy"] = "OnFailure"
    # No ServiceAccounts, no scheduling across nodes: drop what names them.
    for key in ("serviceAccountName", "automountServiceAccountToken", "topologySpreadConstraints",
                "affinity", "nodeSelector", "tolerations", "imagePullSecrets"):
        spec.pop(key, None)
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        patch_env(container, host, ports)
        # kube play ignores readiness and startup probes and would turn the liveness probe into a podman
        # healthcheck (timers outside the pod); the smoke polls /readyz itself.
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            container.pop(probe, None)
        # With hostNetwork, podman 4.3 refuses the pod if a container declares ports ("PortMappings can only
        # be used with Bridge or slirp4netns networking"); the processes listen on the host's ports anyway.
        container.pop("ports", None)
    renamed = {}
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume:
            # podman 4.3 makes each emptyDir a named volume called as the pod's volume ("keys", "tmp"): the
            # same volume for every pod that uses the name, and a name other projects use too. Prefix it with
            # the pod's name (the chart's names are already prefixed by the release).
            renamed[volume["name"]] = f"{pod_name}-{volume['name']}"
            volume["name"] = renamed[volume["name"]]
            add_volume(volumes, volume["name"], "emptyDir")
        if "secret" in volume:
            # See secret_to_configmap: mount the same data as a ConfigMap volume.
            source = volume.pop("secret")
            volume["configMap"] = {"name": source["secretName"]}
            if "items" in source:
                volume["configMap"]["items"] = source["items"]
        if "configMap" in volume:
            # A ConfigMap volume becomes a podman volume named as the ConfigMap, left behind by `kube down`.
            add_volume(volumes, volume["configMap"]["name"], "configMap")
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rendered")
    parser.add_argument("out")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--var", action="append", default=[])
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--volumes-out")
    args = parser.parse_args()

    variables = dict(item.split("=", 1) for item in args.var)
    docs = [d for d in yaml.safe_load_all(open(args.rendered)) if d]
    for path in args.extra:
        text = string.Template(open(path).read()).substitute(variables)
        docs += [d for d in yaml.safe_load_all(text) if d]
    for item in args.secret:
        name, rest = item.split(":", 1)
        key, path = rest.split("=", 1)
        existing = next((d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name), None)
        if existing is None:
            existing = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {}}
            docs.append(existing)
        existing.setdefault("stringData", {})[key] = open(path).read()

    ports = {"scheduler": variables.get("SCHEDULER_PORT", "")}
    out, dropped, volumes = [], [], {}
    for doc in docs:
        kind = doc.get("kind")
        if kind not in KEEP:
            dropped.append(f"{kind}/{doc['metadata']['name']}")
            continue
        if kind == "Secret":
            doc = secret_to_configmap(doc)
        elif kind == "Deployment":
            # One pod per Deployment: the replicas would collide on the host's ports.
            doc["spec"]["replicas"] = 1
            doc["spec"].pop("strategy", None)
            # kube play names a Deployment's pod NAME-pod-0.
            patch_pod_spec(doc["metadata"]["name"] + "-pod-0", doc["spec"]["template"]["spec"], args.host,
                           ports, volumes)
        elif kind == "Pod":
            patch_pod_spec(doc["metadata"]["name"], doc["spec"], args.host, ports, volumes)
        out.append(doc)

    # ConfigMaps before the pods that mount them (the order this was tried with on podman 4.3).
    out.sort(key=lambda d: 0 if d["kind"] == "ConfigMap" else 1)
    with open(args.out, "w") as f:
        yaml.safe_dump_all(out, f, sort_keys=False)
    if args.volumes_out:
        with open(args.volumes_out, "w") as f:
            f.write("".join(f"{v}\n" for v in sorted(volumes)))
    kept = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in out)
    print(f"kube play manifests: {kept}; dropped: {', '.join(dropped) or 'nothing'}", file=sys.stderr)


if __name__ == "__main__":
    main()
