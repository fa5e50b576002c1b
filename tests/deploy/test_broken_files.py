"""The deployment checkers fail on broken files, naming the problem.

Each case breaks one thing in a copy of a real file (docker-compose.yml, the Prometheus targets and
alerts it mounts, the Dockerfile, the Helm chart) and runs the same checker CI runs on the real one,
which passes (deploy_compose, deploy_dockerfile, deploy_chart_*). Run by ctest as deploy_broken_files.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

SOURCE = os.environ.get("TANDEM_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("TANDEM_BIN_DIR", os.path.join(SOURCE, "build/bin"))
PYTHON = "/usr/bin/python3"
TOOLS = os.path.join(SOURCE, "deploy/tools")


def read_file(path):
    with open(path) as f:
        return f.read()


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def run(*argv):
    result = subprocess.run(argv, capture_output=True, text=True, cwd=SOURCE)
    return result.returncode, result.stdout + result.stderr


class BrokenCopies(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-broken-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def copy_with(self, relative, old, new, count=1):
        """A copy of SOURCE/relative in the temp dir with `old` replaced by `new`; the copy's path."""
        text = read_file(os.path.join(SOURCE, relative))
        self.assertTrue(old in text, f"{relative} no longer contains {old!r}: update the test")
        path = os.path.join(self.dir, os.path.basename(relative))
        write_file(path, text.replace(old, new, count))
        return path

    def assertFailsWith(self, result, pattern):
        code, output = result
        self.assertEqual(code, 1, output)
        self.assertRegex(output, pattern)


class ComposeCases(BrokenCopies):
    def check(self, compose, *overrides):
        files = [argument for path in (compose, *overrides) for argument in ("--compose", path)]
        return run(PYTHON, os.path.join(TOOLS, "check_compose.py"), "--bin-dir", BIN, *files,
                   "--project-dir", SOURCE)

    def test_the_real_file_passes(self):
        code, output = self.check(os.path.join(SOURCE, "docker-compose.yml"))
        self.assertEqual(code, 0, output)

    def test_a_misspelt_key_fails_the_compose_schema(self):
        broken = self.copy_with("docker-compose.yml", "    stop_grace_period: 25s\n", "    stop_grace_priod: 25s\n")
        self.assertFailsWith(self.check(broken), r"Unsupported config option .*stop_grace_priod")

    def test_a_variable_that_is_no_flag_fails(self):
        broken = self.copy_with("docker-compose.yml", "TANDEM_MAX_KV_MB:", "TANDEM_MAX_KVMB:")
        self.assertFailsWith(self.check(broken), r"ERROR cloud-tail-a: TANDEM_MAX_KVMB is not a flag of tandem-cloud")

    def test_a_tail_address_on_the_wrong_port_fails(self):
        broken = self.copy_with("docker-compose.yml", "TANDEM_CLOUD: tcp://cloud-tail-a:5555,tcp://cloud-tail-b:5555",
                                "TANDEM_CLOUD: tcp://cloud-tail-a:5555,tcp://cloud-tail-b:5556")
        self.assertFailsWith(self.check(broken), r"TANDEM_CLOUD: cloud-tail-b listens on 5555, not 5556")

    def test_a_model_file_that_is_not_in_the_mounted_folder_fails(self):
        broken = self.copy_with("docker-compose.yml", "${TANDEM_TOKENIZER_FILE:-tok512.bin}",
                                "${TANDEM_TOKENIZER_FILE:-tok1024.bin}")
        self.assertFailsWith(self.check(broken), r"TANDEM_TOKENIZER=/models/tok1024.bin: .* does not exist")

    def test_a_key_nothing_generates_fails(self):
        broken = self.copy_with("docker-compose.yml", "TANDEM_CLIENT_KEY: /keys/edge.key",
                                "TANDEM_CLIENT_KEY: /keys/gateway.key")
        self.assertFailsWith(self.check(broken), r"nothing writes gateway.key into volume 'keys'")

    def test_a_port_published_beyond_loopback_fails(self):
        broken = self.copy_with("docker-compose.yml", "127.0.0.1:${TANDEM_EDGE_PORT:-8080}:8080",
                                "${TANDEM_EDGE_PORT:-8080}:8080")
        self.assertFailsWith(self.check(broken), r"ERROR edge-agent: published port .* is not bound to 127.0.0.1")

    def test_a_scrape_target_on_the_wrong_port_fails(self):
        targets = os.path.join(self.dir, "targets")
        shutil.copytree(os.path.join(SOURCE, "deploy/prometheus/targets"), targets)
        cloud = os.path.join(targets, "cloud.yml")
        text = read_file(cloud)
        write_file(cloud, text.replace("cloud-tail-b:9100", "cloud-tail-b:9101"))
        broken = self.copy_with("docker-compose.yml", "./deploy/prometheus/targets:", targets + ":")
        self.assertFailsWith(self.check(broken), r"scrape target cloud-tail-b:9101: cloud-tail-b serves /metrics on 9100")

    def test_an_alert_rule_that_does_not_parse_fails_promtool(self):
        alerts = self.copy_with("helm/tandem/files/alerts.yml", "tandem_scheduler_tails_alive < 1",
                                "tandem_scheduler_tails_alive <")
        broken = self.copy_with("docker-compose.yml", "./helm/tandem/files/alerts.yml:", alerts + ":")
        self.assertFailsWith(self.check(broken), r"(?s)promtool check config: .*alerts.yml.*parse error")

    def test_a_missing_dashboard_file_fails(self):
        broken = self.copy_with("docker-compose.grafana.yml", "tandem-dashboard.json:", "tandem-dashbaord.json:")
        self.assertFailsWith(self.check(os.path.join(SOURCE, "docker-compose.yml"), broken),
                             r"tandem-dashbaord.json does not exist")

    def test_an_https_edge_scraped_over_plain_http_fails(self):
        targets = os.path.join(self.dir, "targets")
        shutil.copytree(os.path.join(SOURCE, "deploy/prometheus/targets"), targets)
        write_file(os.path.join(targets, "edge-https.yml"), "[]\n")
        write_file(os.path.join(targets, "edge.yml"), "- targets: [edge-agent:8080]\n")
        broken = self.copy_with("docker-compose.yml", "./deploy/prometheus/targets:", targets + ":")
        self.assertFailsWith(self.check(broken), r"edge-agent \(tandem-edge\) is not scraped by job tandem-edge-https")


class DockerfileCases(BrokenCopies):
    def check(self, dockerfile):
        return run(PYTHON, os.path.join(TOOLS, "check_dockerfile.py"), "--bin-dir", BIN, "--dockerfile",
                   dockerfile, "--context", SOURCE)

    def test_the_real_file_passes(self):
        code, output = self.check(os.path.join(SOURCE, "Dockerfile"))
        self.assertEqual(code, 0, output)

    def test_a_runtime_library_left_out_fails(self):
        broken = self.copy_with("Dockerfile", " libzmq5 ", " ")
        self.assertFailsWith(self.check(broken), r"does not install libzmq5 \(.*libzmq.so.5")

    def test_a_package_debian_does_not_have_fails(self):
        broken = self.copy_with("Dockerfile", " libzstd1 ", " libzstd1 libtorch-runtime ")
        self.assertFailsWith(self.check(broken), r"installs libtorch-runtime, which is not a Debian package")

    def test_running_as_root_fails(self):
        broken = self.copy_with("Dockerfile", "USER 10001:10001", "USER root")
        self.assertFailsWith(self.check(broken), r"runs as root")

    def test_copying_a_file_that_is_not_there_fails(self):
        broken = self.copy_with("Dockerfile", "COPY scripts/install-deps.sh", "COPY scripts/install-dependencies.sh")
        self.assertFailsWith(self.check(broken), r"COPY scripts/install-dependencies.sh: no such file")

    def test_a_prebuilt_stage_missing_a_binary_fails(self):
        broken = self.copy_with("Dockerfile", "COPY --from=prebuilt-bin tandem tandem-cloud tandem-edge",
                                "COPY --from=prebuilt-bin tandem tandem-cloud")
        self.assertFailsWith(self.check(broken), r"stage prebuilt copies tandem, tandem-cloud, tandem-scheduler, "
                                                 r"not the runtime stage's")


class ChartCases(BrokenCopies):
    def setUp(self):
        super().setUp()
        self.chart = os.path.join(self.dir, "tandem")
        shutil.copytree(os.path.join(SOURCE, "helm/tandem"), self.chart)

    def break_template(self, name, old, new):
        path = os.path.join(self.chart, "templates", name)
        text = read_file(path)
        self.assertTrue(old in text, f"{name} no longer contains {old!r}: update the test")
        write_file(path, text.replace(old, new, 1))

    def render_and_check(self, *render_args):
        render = subprocess.run([os.path.join(BIN, "helm-render"), "--release-name", "tandem", *render_args,
                                 self.chart], capture_output=True, text=True)
        if render.returncode != 0:
            return render.returncode, render.stderr
        manifests = os.path.join(self.dir, "rendered.yaml")
        write_file(manifests, render.stdout)
        return run(PYTHON, os.path.join(TOOLS, "check_manifests.py"), "--external-secret", "tandem-curve",
                   "--bin-dir", BIN, manifests)

    def test_the_copy_passes(self):
        code, output = self.render_and_check()
        self.assertEqual(code, 0, output)

    def test_a_misspelt_field_fails_the_kubernetes_schema(self):
        self.break_template("cloud-deployment.yaml", "containerPort: {{ $cloud.service.zmqPort }}",
                            "contianerPort: {{ $cloud.service.zmqPort }}")
        self.assertFailsWith(self.render_and_check(), r"contianerPort")

    def test_a_string_where_the_schema_wants_an_integer_fails(self):
        self.break_template("cloud-hpa.yaml", "maxReplicas: {{ $autoscaling.maxReplicas }}",
                            "maxReplicas: {{ $autoscaling.maxReplicas | quote }}")
        self.assertFailsWith(self.render_and_check(), r"maxReplicas")

    def test_a_probe_on_a_port_the_container_lacks_fails(self):
        self.break_template("cloud-deployment.yaml", "path: /readyz\n              port: http",
                            "path: /readyz\n              port: metrics")
        self.assertFailsWith(self.render_and_check(), r"metrics")

    def test_a_service_selecting_no_pods_fails(self):
        self.break_template("scheduler-service.yaml",
                            '(dict "context" . "component" "scheduler")', '(dict "context" . "component" "schedular")')
        self.assertFailsWith(self.render_and_check(), r"(?i)selector")

    def test_an_environment_variable_that_is_no_flag_fails(self):
        self.break_template("cloud-deployment.yaml", "name: TANDEM_MAX_KV_MB", "name: TANDEM_MAX_KV")
        self.assertFailsWith(self.render_and_check(), r"TANDEM_MAX_KV\b.*tandem-cloud")

    def test_a_grace_period_shorter_than_the_drain_is_refused_when_rendering(self):
        code, output = self.render_and_check("--set", "cloud.terminationGracePeriodSeconds=10")
        self.assertNotEqual(code, 0, output)
        self.assertIn("must be at least cloud.drainTimeoutSeconds", output)

    def test_inline_keys_are_required_without_an_existing_secret(self):
        code, output = self.render_and_check("--set", "keys.existingSecret=")
        self.assertNotEqual(code, 0, output)
        self.assertIn("keys.serverSecretKey is required", output)


if __name__ == "__main__":
    unittest.main()
