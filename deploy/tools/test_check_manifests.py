"""Tests of check_manifests.py: a small valid manifest set passes, and each broken variant fails as expected.

run: /usr/bin/python3 -m unittest discover -s deploy/tools -p 'test_*.py'
"""
import contextlib
import copy
import io
import os
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_manifests  # noqa: E402

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_manifests.py")

# What `helm template` prints for a small, correct release: every kind the rules look at.
VALID = """\
---
# Source: tandem/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: tandem
automountServiceAccountToken: false
---
# Source: tandem/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: tandem-clients
data:
  clients.txt: "abc\\n"
---
# Source: tandem/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: tandem-curve
type: Opaque
data:
  cloud.key: c2VjcmV0
  token: dG9rZW4=
---
# Source: tandem/templates/cloud-service.yaml
apiVersion: v1
kind: Service
metadata:
  name: tandem-cloud
  labels:
    app.kubernetes.io/name: tandem
    app.kubernetes.io/component: cloud
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: tandem
    app.kubernetes.io/component: cloud
  ports:
    - name: zmq
      port: 5555
      targetPort: zmq
    - name: http
      port: 8080
      targetPort: 8080
---
# Source: tandem/templates/cloud-deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tandem-cloud
  labels:
    app.kubernetes.io/name: tandem
    app.kubernetes.io/version: "1.0.0"
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: tandem
      app.kubernetes.io/component: cloud
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: "25%"}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: tandem
        app.kubernetes.io/component: cloud
      annotations:
        checksum/clients: 0123abcd
    spec:
      serviceAccountName: tandem
      terminationGracePeriodSeconds: 60
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: cloud
          image: tandem:1.0.0
          command: ["tandem-cloud"]
          env:
            - name: TANDEM_DRAIN_TIMEOUT_S
              value: "30"
            - name: TANDEM_TOKEN
              valueFrom:
                secretKeyRef: {name: tandem-curve, key: token}
            - name: TANDEM_EXTRA
              valueFrom:
                configMapKeyRef: {name: tandem-extra, key: extra, optional: true}
          ports:
            - {name: zmq, containerPort: 5555, protocol: TCP}
            - {name: http, containerPort: 8080, protocol: TCP}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
          livenessProbe:
            tcpSocket: {port: zmq}
          resources:
            requests: {cpu: 1, memory: 512Mi}
            limits: {cpu: "2", memory: 1Gi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: clients, mountPath: /etc/tandem/clients, readOnly: true}
            - {name: keys, mountPath: /etc/tandem/keys, readOnly: true}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: clients
          configMap: {name: tandem-clients}
        - name: keys
          secret:
            secretName: tandem-curve
            defaultMode: 0440
            items: [{key: cloud.key, path: cloud.key}]
        - name: tmp
          emptyDir: {sizeLimit: 64Mi}
---
# Source: tandem/templates/cloud-hpa.yaml
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: tandem-cloud
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: tandem-cloud}
  minReplicas: 2
  maxReplicas: 6
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 70}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies: [{type: Pods, value: 1, periodSeconds: 60}]
---
# Source: tandem/templates/cloud-pdb.yaml
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: tandem-cloud
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app.kubernetes.io/component: cloud}
---
# Source: tandem/templates/networkpolicy.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: tandem-cloud
spec:
  podSelector:
    matchLabels: {app.kubernetes.io/component: cloud}
    matchExpressions: [{key: app.kubernetes.io/name, operator: In, values: [tandem]}]
  policyTypes: [Ingress]
  ingress:
    - ports: [{port: zmq, protocol: TCP}, {port: 8080}]
      from: [{namespaceSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8}}]
---
# Source: tandem/templates/servicemonitor.yaml
# Scrapes the tails' /metrics.
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: tandem
  labels: {release: prometheus}
spec:
  jobLabel: app.kubernetes.io/name
  selector:
    matchLabels: {app.kubernetes.io/name: tandem}
  namespaceSelector: {matchNames: [inference]}
  endpoints:
    - port: http
      path: /metrics
      interval: 30s
      relabelings: [{action: replace, sourceLabels: [__meta_kubernetes_pod_name], targetLabel: pod}]
---
# Source: tandem/templates/prometheusrule.yaml
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: tandem
spec:
  groups:
    - name: tandem
      rules:
        - alert: TandemServiceDown
          expr: up{job=~"tandem-.*"} == 0
          for: 1m
          labels: {severity: critical}
          annotations: {summary: "{{ $labels.job }} is down"}
        - record: job:tandem_errors:rate5m
          expr: sum by (job) (rate(tandem_cloud_errors_total[5m]))
"""
ALL_KINDS = ("ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment", "HorizontalPodAutoscaler",
             "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule")


def parse(text=VALID):
    """[(source, object)] of a manifest stream, to be broken and rendered again."""
    sources = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# Source:")]
    return list(zip(sources, yaml.safe_load_all(text)))


def render(docs):
    return "".join(f"---\n# Source: {source}\n{yaml.safe_dump(doc, sort_keys=False)}" for source, doc in docs)


class CheckManifestsTest(unittest.TestCase):
    def setUp(self):
        self.docs = parse()

    def obj(self, kind, name=None):
        return next(d for _, d in self.docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))

    def container(self):
        return self.obj("Deployment")["spec"]["template"]["spec"]["containers"][0]

    def errors(self, docs=None, **kwargs):
        text = render(self.docs if docs is None else docs)
        return check_manifests.check(text, "rendered.yaml", **kwargs)[0]

    def assertFails(self, expected, **kwargs):
        """The broken variant fails, and one of its error lines contains each expected text."""
        errors = self.errors(**kwargs)
        self.assertTrue(errors, "expected errors, got none")
        for text in expected if isinstance(expected, (list, tuple)) else [expected]:
            self.assertTrue(any(text in e for e in errors), f"no error contains {text!r}:\n" + "\n".join(errors))
        return errors

    # --- the valid set --------------------------------------------------------------------------------
    def test_valid_set_passes(self):
        errors, objs = check_manifests.check(VALID, "rendered.yaml", expect_kinds=ALL_KINDS)
        self.assertEqual(errors, [])
        self.assertEqual(len(objs), 10)
        self.assertEqual(self.errors(), [], "rendering the parsed set again changes nothing")

    def test_cli_exit_codes_and_summary(self):
        with tempfile.TemporaryDirectory() as tmp:
            good, bad, broken = (os.path.join(tmp, n) for n in ("good.yaml", "bad.yaml", "broken.yaml"))
            with open(good, "w") as f:
                f.write(VALID)
            with open(bad, "w") as f:
                f.write(VALID.replace("containerPort: 5555", "contianerPort: 5555"))
            with open(broken, "w") as f:
                f.write("kind: [unclosed\n")
            for path, code, text in ((good, 0, "ok: 10 objects (ConfigMap 1, Deployment 1, "),
                                     (bad, 1, "ERROR tandem/templates/cloud-deployment.yaml Deployment/tandem-cloud: "
                                              ".spec.template.spec.containers[0].ports[0].contianerPort: unknown field"),
                                     (broken, 2, ""), (os.path.join(tmp, "missing.yaml"), 2, "")):
                out = io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                    self.assertEqual(check_manifests.main([path]), code, path)
                self.assertIn(text, out.getvalue())
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as exit_:
            check_manifests.main(["--no-such-flag", "x"])
        self.assertEqual(exit_.exception.code, 2)

    def test_stdin_through_the_interpreter(self):
        run = subprocess.run([sys.executable, TOOL, "--expect-kinds", ",".join(ALL_KINDS), "-"], input=VALID,
                             capture_output=True, text=True)
        self.assertEqual((run.returncode, run.stderr), (0, ""))
        self.assertTrue(run.stdout.startswith("ok: 10 objects"), run.stdout)

    # --- schema -----------------------------------------------------------------------------------------
    def test_typo_field(self):
        port = self.container()["ports"][0]
        port["contianerPort"] = port.pop("containerPort")
        self.assertFails(["containers[0].ports[0].contianerPort: unknown field of V1ContainerPort "
                          "(did you mean containerPort?)",
                          "containers[0].ports[0].containerPort: required field of V1ContainerPort missing"])

    def test_string_for_int_and_bool_for_string(self):
        self.obj("Deployment")["spec"]["replicas"] = "2"
        self.obj("Deployment")["metadata"]["labels"]["enabled"] = True
        self.assertFails([".spec.replicas: expected int, got str '2'",
                          '.metadata.labels.enabled: expected str, got bool True'])

    def test_missing_required_container_name(self):
        del self.container()["name"]
        self.assertFails("Deployment/tandem-cloud: .spec.template.spec.containers[0].name: "
                         "required field of V1Container missing")

    def test_hpa_v2_validated_with_v2beta2_models(self):
        self.obj("HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = "70"
        self.obj("HorizontalPodAutoscaler")["spec"]["maxReplica"] = 6
        self.assertFails(["target.averageUtilization: expected int", ".spec.maxReplica: unknown field of "
                          "V2beta2HorizontalPodAutoscalerSpec (did you mean maxReplicas?)"])

    def test_unknown_kind_and_kind_in_wrong_group(self):
        self.docs.append(("tandem/templates/widget.yaml",
                          {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
        self.obj("Service")["apiVersion"] = "apps/v1"
        self.assertFails(["Widget/w: .: no schema for example.com/v1 Widget",
                          "Service/tandem-cloud: .: no schema for apps/v1 Service"])

    def test_metadata_name_and_label_value(self):
        self.obj("Service")["metadata"]["name"] = "Tandem_Cloud"
        self.obj("ConfigMap")["metadata"]["labels"] = {"note": "x" * 64}
        self.assertFails(["Service/Tandem_Cloud: .metadata.name: 'Tandem_Cloud' is not a DNS-1123 label",
                          ".metadata.labels.note: invalid label value"])

    def test_service_monitor_and_prometheus_rule_schemas(self):
        endpoint = self.obj("ServiceMonitor")["spec"]["endpoints"][0]
        endpoint["intervall"] = "30s"
        endpoint["scheme"] = "ftp"
        self.obj("PrometheusRule")["spec"]["groups"][0]["rules"][0]["record"] = "both"
        self.assertFails([".spec.endpoints[0].intervall: unknown field",
                          ".spec.endpoints[0].scheme: 'ftp' is not one",
                          ".spec.groups[0].rules[0]: a rule needs exactly one of record and alert"])

    def test_duplicate_yaml_key(self):
        text = render(self.docs).replace("  replicas: 2\n", "  replicas: 2\n  replicas: 3\n")
        errors = check_manifests.check(text, "rendered.yaml")[0]
        self.assertTrue(any("tandem/templates/cloud-deployment.yaml" in e and "duplicate key 'replicas'" in e
                            for e in errors), errors)

    # --- consistency ------------------------------------------------------------------------------------
    def test_workload_selector_not_in_template(self):
        self.obj("Deployment")["spec"]["selector"]["matchLabels"]["tier"] = "tail"
        self.assertFails(".spec.selector.matchLabels.tier: tier=tail is not a pod template label")

    def test_service_selector_mismatch(self):
        self.obj("Service")["spec"]["selector"]["app.kubernetes.io/component"] = "scheduler"
        self.assertFails("Service/tandem-cloud: .spec.selector: {'app.kubernetes.io/name': 'tandem', "
                         "'app.kubernetes.io/component': 'scheduler'} matches no workload")

    def test_service_unknown_target_port(self):
        ports = self.obj("Service")["spec"]["ports"]
        ports[0]["targetPort"] = "zeromq"
        ports[1]["targetPort"] = 9090
        self.assertFails([".spec.ports[0].targetPort: 'zeromq' is not a containerPort of Deployment/tandem-cloud",
                          ".spec.ports[1].targetPort: 9090 is not a containerPort"])

    def test_hardening_resources_and_probes(self):
        c = self.container()
        del c["resources"]["limits"]
        c["securityContext"]["readOnlyRootFilesystem"] = False
        del c["securityContext"]["allowPrivilegeEscalation"]
        c["securityContext"]["runAsNonRoot"] = False  # overrides the pod's true
        del c["livenessProbe"]
        c["readinessProbe"]["httpGet"]["port"] = "metrics"
        self.assertFails(["containers[0].resources: missing limits.cpu, limits.memory",
                          "securityContext.readOnlyRootFilesystem: must be true",
                          "securityContext.allowPrivilegeEscalation: must be false",
                          "securityContext.runAsNonRoot: must be true",
                          "containers[0].livenessProbe: missing",
                          "readinessProbe.httpGet.port: 'metrics' is not a containerPort name of container cloud"])

    def test_volume_and_config_references(self):
        spec = self.obj("Deployment")["spec"]["template"]["spec"]
        spec["containers"][0]["volumeMounts"].append({"name": "cache", "mountPath": "/cache"})
        spec["volumes"][0]["configMap"]["name"] = "tandem-allow"
        spec["volumes"][1]["secret"]["items"][0]["key"] = "server.key"
        spec["containers"][0]["envFrom"] = [{"secretRef": {"name": "tandem-extra"}}]
        self.assertFails(["volumeMounts[3].name: no pod volume 'cache'",
                          ".volumes[0].configMap: ConfigMap 'tandem-allow' is not in the file",
                          ".volumes[1].secret: Secret 'tandem-curve' has no key 'server.key'",
                          "envFrom[0].secretRef: Secret 'tandem-extra' is not in the file (or pass --external-secret"])

    def test_external_secret_flag(self):
        self.docs = [d for d in self.docs if d[1]["kind"] != "Secret"]
        self.assertFails("Secret 'tandem-curve' is not in the file")
        self.assertEqual(self.errors(external_secrets=["tandem-curve"]), [])

    def test_service_account_missing(self):
        self.docs = [d for d in self.docs if d[1]["kind"] != "ServiceAccount"]
        self.assertFails(".serviceAccountName: ServiceAccount 'tandem' is not in the file")
        self.obj("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] = "default"
        self.assertEqual(self.errors(), [])

    def test_grace_period_below_drain_timeout(self):
        self.obj("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
        self.assertFails(".spec.template.spec.terminationGracePeriodSeconds: terminationGracePeriodSeconds 10 < "
                         "drain timeout 30")
        del self.obj("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertEqual(self.errors(), [], "the default 30 s covers a 30 s drain")
        self.container()["env"][0]["value"] = "45"
        self.assertFails("terminationGracePeriodSeconds 30 < drain timeout 45")

    def test_hpa_target_missing_and_replica_bounds(self):
        hpa = self.obj("HorizontalPodAutoscaler")["spec"]
        hpa["scaleTargetRef"]["name"] = "tandem-tail"
        hpa["minReplicas"] = 8
        self.assertFails([".spec.scaleTargetRef: Deployment/tandem-tail is not in the file",
                          ".spec.minReplicas: minReplicas 8 > maxReplicas 6"])

    def test_pdb_and_network_policy_selectors(self):
        self.obj("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] = {"app": "other"}
        self.obj("NetworkPolicy")["spec"]["podSelector"]["matchExpressions"][0]["operator"] = "NotIn"
        self.assertFails(["PodDisruptionBudget/tandem-cloud: .spec.selector: matches no workload",
                          "NetworkPolicy/tandem-cloud: .spec.podSelector: matches no workload"])

    def test_network_policy_port_name(self):
        self.obj("NetworkPolicy")["spec"]["podSelector"] = {}  # all pods: allowed
        self.obj("NetworkPolicy")["spec"]["ingress"][0]["ports"][0]["port"] = "grpc"
        errors = self.assertFails(".spec.ingress[0].ports[0].port: 'grpc' is not a containerPort name")
        self.assertEqual(len(errors), 1, errors)

    def test_service_monitor_port_not_on_service(self):
        self.obj("ServiceMonitor")["spec"]["endpoints"][0]["port"] = "metrics"
        self.assertFails("ServiceMonitor/tandem: .spec.endpoints[0].port: 'metrics' is not a port name of the "
                         "selected Services tandem-cloud")
        self.obj("ServiceMonitor")["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "other"}
        self.assertFails("ServiceMonitor/tandem: .spec.selector: matches the labels of no Service")

    def test_duplicate_object(self):
        self.docs.append(("tandem/templates/extra.yaml", copy.deepcopy(self.obj("ConfigMap"))))
        self.assertFails("ERROR tandem/templates/extra.yaml ConfigMap/tandem-clients: .metadata.name: duplicate "
                         "ConfigMap (also in tandem/templates/configmap.yaml)")

    def test_expect_kinds(self):
        self.assertFails("ERROR rendered.yaml StatefulSet/-: .: --expect-kinds: no StatefulSet in the file",
                         expect_kinds=["Deployment", "StatefulSet"])

    def test_tandem_flags_with_bin_dir(self):
        with tempfile.TemporaryDirectory() as tmp:
            exe = os.path.join(tmp, "tandem-cloud")
            with open(exe, "w") as f:
                f.write("#!/bin/sh\necho '--drain-timeout-s N [env TANDEM_DRAIN_TIMEOUT_S]'\n")
            os.chmod(exe, 0o755)
            self.assertFails("env[1].name: TANDEM_TOKEN is not a flag of tandem-cloud", bin_dir=tmp)


if __name__ == "__main__":
    unittest.main()
