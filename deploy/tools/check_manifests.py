#!/usr/bin/python3
"""Validates rendered Kubernetes manifests (`helm template` output): schemas, then whether they would work.

  1. Schema: every object is walked against the API types of python3-kubernetes (the generated models'
     `openapi_types` and `attribute_map`): unknown fields, wrong types, missing required fields. The Prometheus
     operator's ServiceMonitor and PrometheusRule (CRDs, not in the client) are checked with JSON Schemas below.
  2. Consistency across the file: selectors select pods, Services reach container ports, probes, volumes and
     ConfigMap/Secret/ServiceAccount references resolve, pods run hardened and bounded, the grace period covers
     the drain timeout, HPA and ServiceMonitor targets exist, no duplicates. With --bin-dir, the TANDEM_*
     variables of a container running a Tandem binary must be flags of that binary (its --help).

usage: check_manifests.py [--expect-kinds Kind,...] [--external-secret NAME]... [--bin-dir DIR] FILE|-
Prints `ERROR <source> <Kind>/<name>: <path>: <problem>` per problem and exits 1, or `ok: ...` and exits 0;
exits 2 on usage errors, unreadable input or invalid YAML.
"""
import argparse
import difflib
import functools
import json
import os
import re
import subprocess
import sys
from collections import Counter

import jsonschema
import yaml
from kubernetes import client
from kubernetes.client import models
from kubernetes.client.configuration import Configuration

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# The client is generated from Kubernetes 1.22, which has no autoscaling/v2 models. autoscaling/v2 is
# autoscaling/v2beta2 promoted to GA with the same schema, so v2 objects are validated with the V2beta2 models.
VERSION_ALIASES = {"autoscaling/v2": "autoscaling/v2beta2"}
# resource.Quantity fields, which the generator flattened to 'str': YAML numbers (`cpu: 1`) are valid there.
QUANTITY_FIELDS = {
    "V1ResourceRequirements": {"limits", "requests"}, "V1EmptyDirVolumeSource": {"size_limit"},
    "V1PodSpec": {"overhead"}, "V1ResourceFieldSelector": {"divisor"}, "V1ResourceQuotaSpec": {"hard"},
    "V1LimitRangeItem": {"default", "default_request", "max", "min", "max_limit_request_ratio"},
    "V2beta2MetricTarget": {"value", "average_value"}, "V1PersistentVolumeSpec": {"capacity"},
}
SCALARS = {"str", "int", "float", "bool", "datetime", "date"}
LONG_NAMED_KINDS = {"ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                    "ClusterRoleBinding"}  # DNS-1123 subdomains (<= 253); the other kinds: DNS-1123 labels
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"

# --- JSON Schemas of the Prometheus operator's CRDs (monitoring.coreos.com/v1), commonly used fields -------


def _obj(properties, required=(), **extra):
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": list(required), **extra}


_STR, _BOOL, _INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
_STRS = {"type": "array", "items": _STR}
_STR_MAP = {"type": "object", "additionalProperties": _STR}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
_KEY_REF = _obj({"key": _STR, "name": _STR, "optional": _BOOL}, ["key"])
_SECRET_OR_CM = _obj({"secret": _KEY_REF, "configMap": _KEY_REF})
_RELABEL = {"type": "array", "items": _obj({
    "sourceLabels": _STRS, "separator": _STR, "targetLabel": _STR, "regex": _STR, "modulus": _INT,
    "replacement": _STR, "action": {"enum": ["replace", "keep", "drop", "hashmod", "labelmap", "labeldrop",
                                             "labelkeep", "lowercase", "uppercase", "keepequal", "dropequal",
                                             "Replace", "Keep", "Drop", "HashMod", "LabelMap", "LabelDrop",
                                             "LabelKeep", "Lowercase", "Uppercase", "KeepEqual", "DropEqual"]}})}
_LABEL_SELECTOR = _obj({"matchLabels": _STR_MAP, "matchExpressions": {"type": "array", "items": _obj(
    {"key": _STR, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]}, "values": _STRS},
    ["key", "operator"])}})
_ENDPOINT = _obj({
    "port": _STR, "targetPort": {"type": ["integer", "string"]}, "path": _STR,
    "scheme": {"enum": ["http", "https"]}, "params": {"type": "object", "additionalProperties": _STRS},
    "interval": _DURATION, "scrapeTimeout": _DURATION, "honorLabels": _BOOL, "honorTimestamps": _BOOL,
    "relabelings": _RELABEL, "metricRelabelings": _RELABEL, "bearerTokenFile": _STR,
    "bearerTokenSecret": _KEY_REF, "basicAuth": _obj({"username": _KEY_REF, "password": _KEY_REF}),
    "authorization": _obj({"type": _STR, "credentials": _KEY_REF}), "proxyUrl": _STR,
    "followRedirects": _BOOL, "enableHttp2": _BOOL, "filterRunning": _BOOL,
    "tlsConfig": _obj({"ca": _SECRET_OR_CM, "cert": _SECRET_OR_CM, "keySecret": _KEY_REF, "caFile": _STR,
                       "certFile": _STR, "keyFile": _STR, "serverName": _STR, "insecureSkipVerify": _BOOL})})
_TOP = {"apiVersion": _STR, "kind": _STR, "metadata": {"type": "object"}}  # metadata: V1ObjectMeta model
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _obj({**_TOP, "spec": _obj({
        "endpoints": {"type": "array", "items": _ENDPOINT}, "selector": _LABEL_SELECTOR,
        "namespaceSelector": _obj({"any": _BOOL, "matchNames": _STRS}), "jobLabel": _STR,
        "targetLabels": _STRS, "podTargetLabels": _STRS, "sampleLimit": _INT, "targetLimit": _INT,
        "labelLimit": _INT, "labelNameLengthLimit": _INT, "labelValueLengthLimit": _INT,
        "attachMetadata": _obj({"node": _BOOL})}, ["endpoints", "selector"])}, ["metadata", "spec"]),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _obj({**_TOP, "spec": _obj({"groups": {
        "type": "array", "items": _obj({
            "name": _STR, "interval": _DURATION, "limit": _INT, "partial_response_strategy": _STR,
            "rules": {"type": "array", "items": _obj({
                "record": _STR, "alert": _STR, "expr": {"type": ["integer", "string"]}, "for": _DURATION,
                "keep_firing_for": _DURATION, "labels": _STR_MAP, "annotations": _STR_MAP}, ["expr"],
                oneOf=[{"required": ["record"]}, {"required": ["alert"]}],
                **{"x-message": "a rule needs exactly one of record and alert"})}}, ["name", "rules"])}})},
        ["metadata", "spec"]),
}


# --- loading -----------------------------------------------------------------------------------------------
class Obj:
    def __init__(self, doc, source):
        self.doc, self.source = doc, source
        self.kind, self.api_version = str(doc.get("kind")), str(doc.get("apiVersion"))
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        self.name, self.namespace = meta.get("name"), meta.get("namespace")
        self.labels = as_dict(meta.get("labels"))

    def where(self):
        return f"{self.source} {self.kind}/{self.name or '-'}"


class _DupKeyLoader(yaml.SafeLoader):
    """Records duplicate mapping keys, which PyYAML silently drops and a bad template easily produces."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                self.duplicates.append((key_node.start_mark.line, key))
            seen.add(key)
        return super().construct_mapping(node, deep)


def load(text, input_name):
    """(objects, [(source, problem)]) of a multi-document stream; raises yaml.YAMLError."""
    lines = text.splitlines()
    loader = _DupKeyLoader(text)
    loader.duplicates = []
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append((node.start_mark.line, node.end_mark.line, loader.construct_document(node)))
    finally:
        loader.dispose()
    objs, problems = [], []
    for index, (start, end, doc) in enumerate(docs):
        source = f"{input_name}[{index}]"
        for line in reversed(lines[:start + 1]):  # the `# Source:` comment helm prints after the `---`
            if m := re.match(r"#\s*Source:\s*(\S+)", line):
                source = m.group(1)
                break
            if line.startswith("---"):
                break
        for line, key in loader.duplicates:
            if start <= line <= end:
                problems.append((source, f"line {line + 1}: duplicate key {key!r}"))
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append((source, "document is not a mapping"))
            continue
        objs.append(Obj(doc, source))
    return objs, problems


# --- small helpers -----------------------------------------------------------------------------------------
def as_dict(value):
    return value if isinstance(value, dict) else {}


def as_list(value):
    return value if isinstance(value, list) else []


def dig(value, *keys):
    for key in keys:
        value = as_dict(value).get(key)
    return value


def fmt_path(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if re.fullmatch(r"[A-Za-z_$][\w-]*", p)
                                                     else f"[{json.dumps(p)}]")
    return out or "."


def selects(selector, labels):
    """Whether a LabelSelector (matchLabels/matchExpressions) selects these labels; {} selects everything."""
    selector = as_dict(selector)
    if any(labels.get(k) != v for k, v in as_dict(selector.get("matchLabels")).items()):
        return False
    for expr in as_list(selector.get("matchExpressions")):
        key, op, values = dig(expr, "key"), dig(expr, "operator"), as_list(dig(expr, "values"))
        if not {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False):
            return False
    return True


def containers(spec, init=True):
    """(path, container) of the containers (and init containers) of a pod spec."""
    for field in ("initContainers", "containers") if init else ("containers",):
        for i, c in enumerate(as_list(spec.get(field))):
            if isinstance(c, dict):
                yield [field, i], c


def container_ports(workloads):
    """Names and numbers of the containerPorts of the workloads' (non-init) containers."""
    names, numbers = set(), set()
    for w in workloads:
        for _, c in containers(pod_spec(w), init=False):
            for p in as_list(c.get("ports")):
                names.add(dig(p, "name"))
                numbers.add(dig(p, "containerPort"))
    return names - {None}, numbers - {None}


def pod_spec(w):
    return as_dict(dig(w.doc, "spec", "template", "spec"))


def pod_labels(w):
    return as_dict(dig(w.doc, "spec", "template", "metadata", "labels"))


def same_namespace(a, b):  # helm template often leaves the namespace unset: unset matches any
    return a.namespace is None or b.namespace is None or a.namespace == b.namespace


# --- schema: python3-kubernetes models ---------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def model_class(api_version, kind):
    """The model of apiVersion+kind, read off the client's own API class for that group version: the
    docstring of `read_[namespaced_]<kind>` (or `create_...`) names its return type, e.g. AppsV1Api ->
    V1Deployment. This resolves clashes by group (v1 Event -> CoreV1Event, events.k8s.io/v1 -> EventsV1Event)
    and rejects a kind in the wrong group (apps/v1 Service)."""
    group, _, version = VERSION_ALIASES.get(api_version, api_version).rpartition("/")
    prefix = "".join(p.capitalize() for p in group.removesuffix(".k8s.io").split(".")) if group else "Core"
    api = getattr(client, f"{prefix}{version.capitalize()}Api", None)
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", kind).lower()
    for verb in ("read", "create"):
        for method in (f"{verb}_namespaced_{snake}", f"{verb}_{snake}"):
            if m := re.search(r":return: (\w+)", getattr(getattr(api, method, None), "__doc__", None) or ""):
                return getattr(models, m.group(1), None)
    return None


_VALIDATING = Configuration()
_VALIDATING.client_side_validation = True


@functools.lru_cache(maxsize=None)
def _probe(cls):
    probe = cls.__new__(cls)  # no __init__: it would stop at the first None required field
    probe.local_vars_configuration = _VALIDATING
    return probe


@functools.lru_cache(maxsize=None)
def required_fields(cls):
    """Required attributes of a model. The generated setters raise ValueError("... must not be `None`") for
    a required field when client_side_validation is on; calling each property's setter with None on a bare
    instance asks the generated code itself, field by field, instead of parsing its source or docstrings."""
    required = set()
    for attr in cls.openapi_types:
        try:
            getattr(cls, attr).fset(_probe(cls), None)
        except ValueError:
            required.add(attr)
    return frozenset(required)


def scalar_ok(typ, value, quantity):
    if typ == "str":
        return isinstance(value, str) or (quantity and isinstance(value, (int, float))
                                          and not isinstance(value, bool))
    if typ == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ == "bool":
        return isinstance(value, bool)
    return isinstance(value, str) or hasattr(value, "isoformat")  # datetime, date: YAML may parse them


def check_value(err, path, value, typ, quantity=False):
    if value is None or typ == "object":  # null = unset; 'object' is free-form (IntOrString, raw JSON)
        return
    if m := re.fullmatch(r"list\[(.+)\]", typ):
        if not isinstance(value, list):
            return err(path, f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            check_value(err, path + [i], item, m.group(1), quantity)
    elif m := re.fullmatch(r"dict\(str, (.+)\)", typ):
        if not isinstance(value, dict):
            return err(path, f"expected a mapping, got {type(value).__name__}")
        for key, item in value.items():
            if not isinstance(key, str):
                err(path, f"key {key!r} is not a string")
            check_value(err, path + [str(key)], item, m.group(1), quantity)
    elif typ in SCALARS:
        if not scalar_ok(typ, value, quantity):
            err(path, f"expected {typ}, got {type(value).__name__} {value!r}")
    else:
        check_model(err, path, value, getattr(models, typ))


def check_model(err, path, value, cls):
    if not isinstance(value, dict):
        return err(path, f"expected a mapping ({cls.__name__}), got {type(value).__name__}")
    attr_of = {key: attr for attr, key in cls.attribute_map.items()}
    for key, item in value.items():
        attr = attr_of.get(key)
        if attr is None:
            close = difflib.get_close_matches(str(key), attr_of, n=1)
            err(path + [str(key)], f"unknown field of {cls.__name__}" + (f" (did you mean {close[0]}?)"
                                                                          if close else ""))
            continue
        typ = cls.openapi_types[attr]
        check_value(err, path + [key], item, typ, attr in QUANTITY_FIELDS.get(cls.__name__, ()))
        if typ in SCALARS and item is not None:
            try:  # the setters' own value checks (patterns such as base64 caBundle; enums where generated)
                getattr(cls, attr).fset(_probe(cls), item)
            except ValueError as e:
                err(path + [key], str(e))
    for attr in sorted(required_fields(cls)):
        if value.get(cls.attribute_map[attr]) is None:
            err(path + [cls.attribute_map[attr]], f"required field of {cls.__name__} missing")


def check_crd(err, doc, schema):
    for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path)):
        path = [str(p) if not isinstance(p, int) else p for p in e.absolute_path]
        if e.validator == "additionalProperties":
            for key in sorted(set(e.instance) - set(e.schema.get("properties", {}))):
                err(path + [str(key)], "unknown field")
        elif e.validator == "required":
            err(path + [e.message.split("'")[1]], "required field missing")
        else:
            err(path, e.schema.get("x-message", e.message))


def check_metadata(err, o):
    name = o.name
    if not isinstance(name, str) or not name:
        return err(["metadata", "name"], "missing")
    limit, pattern = (253, DNS_SUBDOMAIN) if o.kind in LONG_NAMED_KINDS else (63, DNS_LABEL)
    if len(name) > limit or not re.fullmatch(pattern, name):
        err(["metadata", "name"], f"{name!r} is not a DNS-1123 {'subdomain' if limit == 253 else 'label'} "
                                  f"(lowercase alphanumerics and '-', at most {limit} characters)")
    check_labels(err, ["metadata", "labels"], o.labels)


def check_labels(err, path, labels):
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not re.fullmatch(DNS_SUBDOMAIN, prefix))) or \
                len(name) > 63 or not re.fullmatch(LABEL_NAME, name):
            err(path + [str(key)], "invalid label key")
        if isinstance(value, str) and (len(value) > 63 or (value and not re.fullmatch(LABEL_NAME, value))):
            err(path + [str(key)], f"invalid label value {value!r} (at most 63 alphanumerics, '-', '_', '.')")


# --- consistency rules -------------------------------------------------------------------------------------
class Checker:
    def __init__(self, objs, external_secrets=(), bin_dir=None):
        self.objs, self.external_secrets, self.bin_dir = objs, set(external_secrets), bin_dir
        self.errors, self._flags = [], {}

    def error(self, o, path, problem):
        self.errors.append(f"ERROR {o.where()}: {fmt_path(path)}: {problem}")

    def find(self, kind, name, near):
        return next((o for o in self.objs if o.kind == kind and o.name == name and same_namespace(o, near)), None)

    def workloads(self, near):
        return [w for w in self.objs if w.kind in WORKLOAD_KINDS and same_namespace(w, near)]

    def run(self):
        rules = {"Service": self.rule_service, "HorizontalPodAutoscaler": self.rule_hpa,
                 "PodDisruptionBudget": self.rule_pdb, "NetworkPolicy": self.rule_network_policy,
                 "ServiceMonitor": self.rule_service_monitor}
        for o in self.objs:
            err = functools.partial(self.error, o)
            self.check_schema(o, err)
            rule = self.rule_workload if o.kind in WORKLOAD_KINDS else rules.get(o.kind)
            try:
                rule and rule(o, err)
            except (TypeError, AttributeError, KeyError, ValueError) as e:  # a malformed object the schema
                err([], f"consistency rules not checked: malformed object ({e})")  # check reported
        self.rule_duplicates()
        return self.errors

    def check_schema(self, o, err):
        if (o.api_version, o.kind) in CRD_SCHEMAS:
            check_crd(err, o.doc, CRD_SCHEMAS[o.api_version, o.kind])
            check_value(err, ["metadata"], o.doc.get("metadata"), "V1ObjectMeta")
        elif cls := model_class(o.api_version, o.kind):
            check_model(err, [], o.doc, cls)
        else:
            return err([], f"no schema for {o.api_version} {o.kind}")
        check_metadata(err, o)

    # Deployment, StatefulSet, DaemonSet: the pods they make would start, be probed, stay bounded and safe.
    def rule_workload(self, o, err):
        base, spec = ["spec", "template", "spec"], pod_spec(o)
        labels, selector = pod_labels(o), dig(o.doc, "spec", "selector")
        check_labels(err, ["spec", "template", "metadata", "labels"], labels)
        for key, value in as_dict(dig(selector, "matchLabels")).items():
            if labels.get(key) != value:
                err(["spec", "selector", "matchLabels", key], f"{key}={value} is not a pod template label")
        if not selects(selector, labels):
            err(["spec", "selector"], "does not select the pod template's labels")
        self.pod_hardening(o, err, base, spec)
        self.pod_probes(err, base, spec)
        self.pod_references(o, err, base, spec)
        self.pod_drain(err, base, spec)
        if self.bin_dir:
            self.pod_tandem_flags(err, base, spec)

    def pod_hardening(self, o, err, base, spec):
        """Requests and limits (the scheduler and the HPA need them) and a non-root, read-only container."""
        pod_sc = as_dict(spec.get("securityContext"))
        for path, c in containers(spec):
            res = as_dict(c.get("resources"))
            missing = [f"{s}.{r}" for s in ("requests", "limits") for r in ("cpu", "memory")
                       if dig(res, s, r) is None]
            if missing:
                err(base + path + ["resources"], "missing " + ", ".join(missing))
            sc, p = as_dict(c.get("securityContext")), base + path + ["securityContext"]
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                err(p + ["runAsNonRoot"], "must be true (in the pod or the container securityContext)")
            if sc.get("readOnlyRootFilesystem") is not True:
                err(p + ["readOnlyRootFilesystem"], "must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                err(p + ["allowPrivilegeEscalation"], "must be false")

    def pod_probes(self, err, base, spec):
        for path, c in containers(spec, init=False):  # init containers cannot have probes
            names = {dig(p, "name") for p in as_list(c.get("ports"))} - {None}
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    err(base + path + [probe], "missing")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                for action in ("httpGet", "tcpSocket"):
                    port = dig(c, probe, action, "port")
                    if isinstance(port, str) and port not in names:
                        err(base + path + [probe, action, "port"],
                            f"{port!r} is not a containerPort name of container {c.get('name')} "
                            f"(has {sorted(names)})")

    def pod_references(self, o, err, base, spec):
        """Volume mounts, ConfigMaps, Secrets and the ServiceAccount a pod needs exist."""
        volumes = {dig(v, "name") for v in as_list(spec.get("volumes"))}
        for path, c in containers(spec):
            for j, m in enumerate(as_list(c.get("volumeMounts"))):
                if dig(m, "name") not in volumes:
                    err(base + path + ["volumeMounts", j, "name"], f"no pod volume {dig(m, 'name')!r}")
        for path, kind, ref, keys in self.config_refs(spec):
            if dig(ref, "optional") is True or (kind == "Secret" and ref.get("name") in self.external_secrets):
                continue
            target = self.find(kind, ref.get("name"), o)
            if target is None:
                hint = " (or pass --external-secret if created outside the chart)" if kind == "Secret" else ""
                err(base + path, f"{kind} {ref.get('name')!r} is not in the file{hint}")
                continue
            data = {**as_dict(target.doc.get("data")), **as_dict(target.doc.get("binaryData")),
                    **as_dict(target.doc.get("stringData"))}
            for key in keys:
                if key not in data:
                    err(base + path, f"{kind} {ref.get('name')!r} has no key {key!r}")
        account = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if account and account != "default" and self.find("ServiceAccount", account, o) is None:
            err(base + ["serviceAccountName"], f"ServiceAccount {account!r} is not in the file")

    @staticmethod
    def config_refs(spec):
        """(path, kind, {name, optional}, keys) of every ConfigMap/Secret reference of a pod spec."""
        def items_keys(source):
            return [dig(i, "key") for i in as_list(source.get("items"))]
        for i, v in enumerate(as_list(spec.get("volumes"))):
            if isinstance(cm := dig(v, "configMap"), dict):
                yield ["volumes", i, "configMap"], "ConfigMap", cm, items_keys(cm)
            if isinstance(sec := dig(v, "secret"), dict):
                yield ["volumes", i, "secret"], "Secret", {**sec, "name": sec.get("secretName")}, items_keys(sec)
            for j, s in enumerate(as_list(dig(v, "projected", "sources"))):
                for field, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                    if isinstance(src := dig(s, field), dict):
                        yield ["volumes", i, "projected", "sources", j, field], kind, src, items_keys(src)
        for path, c in containers(spec):
            for j, e in enumerate(as_list(c.get("envFrom"))):
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if isinstance(ref := dig(e, field), dict):
                        yield path + ["envFrom", j, field], kind, ref, []
            for j, e in enumerate(as_list(c.get("env"))):
                for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if isinstance(ref := dig(e, "valueFrom", field), dict):
                        yield path + ["env", j, "valueFrom", field], kind, ref, [ref.get("key")]

    def pod_drain(self, err, base, spec):
        """A draining Tandem process must finish before Kubernetes' SIGKILL."""
        grace = spec.get("terminationGracePeriodSeconds")
        grace = 30 if grace is None else grace
        for path, c in containers(spec, init=False):
            for j, e in enumerate(as_list(c.get("env"))):
                if dig(e, "name") == "TANDEM_DRAIN_TIMEOUT_S" and dig(e, "value") is not None:
                    try:
                        drain = int(str(e["value"]))
                    except ValueError:
                        err(base + path + ["env", j, "value"], f"TANDEM_DRAIN_TIMEOUT_S {e['value']!r} is not "
                                                              "an integer")
                        continue
                    if isinstance(grace, int) and grace < drain:
                        err(base + ["terminationGracePeriodSeconds"],
                            f"terminationGracePeriodSeconds {grace} < drain timeout {drain} "
                            f"(TANDEM_DRAIN_TIMEOUT_S of {c.get('name') or fmt_path(path)})")

    def pod_tandem_flags(self, err, base, spec):
        """With --bin-dir: TANDEM_* variables must be flags of the Tandem binary the container runs."""
        for path, c in containers(spec):
            binary = os.path.basename(str((as_list(c.get("command")) + as_list(c.get("args")) + [""])[0]))
            if not binary.startswith("tandem"):
                continue
            if binary not in self._flags:
                exe = os.path.join(self.bin_dir, binary)
                run = subprocess.run([exe, "--help"], capture_output=True, text=True) if os.access(exe, os.X_OK) \
                    else None
                self._flags[binary] = set(re.findall(r"\[env (TANDEM_\w+)\]", run.stdout + run.stderr)) \
                    if run else None
            flags = self._flags[binary]
            if flags is None:
                err(base + path + ["command"], f"{binary} is not in --bin-dir {self.bin_dir}")
                continue
            for j, e in enumerate(as_list(c.get("env"))):
                name = str(dig(e, "name"))
                if name.startswith("TANDEM_") and name not in flags:
                    err(base + path + ["env", j, "name"], f"{name} is not a flag of {binary}")

    # Service: it selects pods, and every port reaches a port those pods declare.
    def rule_service(self, o, err):
        spec = as_dict(o.doc.get("spec"))
        if spec.get("type") == "ExternalName":
            return
        selector = as_dict(spec.get("selector"))
        if not selector:
            return err(["spec", "selector"], "empty: the Service would select no pods")
        matched = [w for w in self.workloads(o) if all(pod_labels(w).get(k) == v for k, v in selector.items())]
        if not matched:
            return err(["spec", "selector"], f"{selector} matches no workload's pod labels in the file")
        names, numbers = container_ports(matched)
        for i, port in enumerate(as_list(spec.get("ports"))):
            target = dig(port, "targetPort") if dig(port, "targetPort") is not None else dig(port, "port")
            if (isinstance(target, str) and target not in names) or (isinstance(target, int) and
                                                                      target not in numbers):
                err(["spec", "ports", i, "targetPort"], f"{target!r} is not a containerPort of "
                    f"{', '.join(w.kind + '/' + str(w.name) for w in matched)} (has {sorted(names)}, "
                    f"{sorted(numbers)})")

    def rule_hpa(self, o, err):
        spec = as_dict(o.doc.get("spec"))
        ref = as_dict(spec.get("scaleTargetRef"))
        if ref and self.find(ref.get("kind"), ref.get("name"), o) is None:
            err(["spec", "scaleTargetRef"], f"{ref.get('kind')}/{ref.get('name')} is not in the file")
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            err(["spec", "minReplicas"], f"minReplicas {low} > maxReplicas {high}")

    def rule_pdb(self, o, err):
        selector = dig(o.doc, "spec", "selector")
        if selector is None:  # policy/v1: a null selector selects no pods
            return err(["spec", "selector"], "missing: the budget would cover no pods")
        if not any(selects(selector, pod_labels(w)) for w in self.workloads(o)):
            err(["spec", "selector"], "matches no workload's pod labels in the file")

    def rule_network_policy(self, o, err):
        selector = dig(o.doc, "spec", "podSelector")
        selected = [w for w in self.workloads(o) if selects(selector, pod_labels(w))]
        if selector is not None and not selected:
            return err(["spec", "podSelector"], "matches no workload's pod labels in the file")
        names, _ = container_ports(selected)
        for i, rule in enumerate(as_list(dig(o.doc, "spec", "ingress"))):
            for j, port in enumerate(as_list(dig(rule, "ports"))):
                if isinstance(dig(port, "port"), str) and port["port"] not in names:
                    err(["spec", "ingress", i, "ports", j, "port"],
                        f"{port['port']!r} is not a containerPort name of the selected pods (has {sorted(names)})")

    # ServiceMonitor: Prometheus finds its Services, and the named port on them.
    def rule_service_monitor(self, o, err):
        services = [s for s in self.objs if s.kind == "Service" and selects(dig(o.doc, "spec", "selector"), s.labels)]
        if not services:
            return err(["spec", "selector"], "matches the labels of no Service in the file")
        names = {dig(p, "name") for s in services for p in as_list(dig(s.doc, "spec", "ports"))} - {None}
        for i, endpoint in enumerate(as_list(dig(o.doc, "spec", "endpoints"))):
            port = dig(endpoint, "port")
            if port is not None and port not in names:
                err(["spec", "endpoints", i, "port"], f"{port!r} is not a port name of the selected Services "
                    f"{', '.join(str(s.name) for s in services)} (has {sorted(names)})")

    def rule_duplicates(self):
        seen = {}
        for o in self.objs:
            key = (o.kind, o.namespace or "", o.name)
            if key in seen:
                self.error(o, ["metadata", "name"], f"duplicate {o.kind} (also in {seen[key].source})")
            seen.setdefault(key, o)


def check(text, input_name="-", expect_kinds=(), external_secrets=(), bin_dir=None):
    """(error lines, objects) of a manifest stream; raises yaml.YAMLError for invalid YAML."""
    objs, problems = load(text, input_name)
    errors = [f"ERROR {source} -/-: .: {problem}" for source, problem in problems]
    errors += Checker(objs, external_secrets, bin_dir).run()
    present = {o.kind for o in objs}
    errors += [f"ERROR {input_name} {kind}/-: .: --expect-kinds: no {kind} in the file"
               for kind in expect_kinds if kind not in present]
    return errors, objs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", help="rendered manifests, or - for stdin")
    parser.add_argument("--expect-kinds", default="", help="comma-separated kinds that must appear")
    parser.add_argument("--external-secret", action="append", default=[], metavar="NAME",
                        help="a Secret created outside the chart (repeatable)")
    parser.add_argument("--bin-dir", help="directory of the Tandem binaries, to check TANDEM_* variables")
    args = parser.parse_args(argv)
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"check_manifests: cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    kinds = [k.strip() for k in args.expect_kinds.split(",") if k.strip()]
    try:
        errors, objs = check(text, "<stdin>" if args.file == "-" else args.file, kinds, args.external_secret,
                             args.bin_dir)
    except yaml.YAMLError as e:
        print(f"check_manifests: {args.file}: invalid YAML: {e}", file=sys.stderr)
        return 2
    if errors:
        print("\n".join(errors))
        return 1
    counts = Counter(o.kind for o in objs)
    print(f"ok: {len(objs)} objects ({', '.join(f'{k} {n}' for k, n in sorted(counts.items()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
