package main

// helm-render through its command line as the chart checks use it (parseArgs, then run), on small charts
// written here: each case shows one behaviour of `helm template` that helm/tandem relies on.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testChartYAML = "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: \"1.2\"\nkubeVersion: \">=1.23.0-0\"\n"

// writeChart makes a chart directory from relative path -> content, Chart.yaml included unless given.
func writeChart(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["Chart.yaml"]; !ok {
		files["Chart.yaml"] = testChartYAML
	}
	for name, content := range files {
		file := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// render runs helm-render with args (the chart directory last) and returns its output or its error.
func render(t *testing.T, args ...string) (string, error) {
	t.Helper()
	opts, err := parseArgs(args)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	err = run(opts, &out)
	return out.String(), err
}

func mustRender(t *testing.T, args ...string) string {
	t.Helper()
	out, err := render(t, args...)
	if err != nil {
		t.Fatalf("helm-render %v: %v", args, err)
	}
	return out
}

func expectContains(t *testing.T, text string, wanted ...string) {
	t.Helper()
	for _, w := range wanted {
		if !strings.Contains(text, w) {
			t.Errorf("output lacks %q:\n%s", w, text)
		}
	}
}

const configMapTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "demo.name" . }}
data:
  replicas: {{ .Values.replicas | quote }}
  image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) | quote }}
  {{- with .Values.extra }}
  extra: {{ . | quote }}
  {{- end }}
  labels: |
    {{- toYaml .Values.labels | nindent 4 }}
`

func valuesChart(t *testing.T) string {
	return writeChart(t, map[string]string{
		"values.yaml": "replicas: 1\nimage:\n  repository: tandem\n  tag: \"\"\nextra: dropped-by-null\n" +
			"labels:\n  team: edge\n",
		"templates/_helpers.tpl":   `{{- define "demo.name" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}`,
		"templates/configmap.yaml": configMapTemplate,
	})
}

func TestDefaultsReleaseAndChartMetadata(t *testing.T) {
	out := mustRender(t, "--release-name", "r1", valuesChart(t))
	expectContains(t, out, "# Source: demo/templates/configmap.yaml", "name: r1-demo", `replicas: "1"`,
		`image: "tandem:1.2"`, `extra: "dropped-by-null"`, "team: edge")
}

func TestValuesFilesThenSetOverrideInOrder(t *testing.T) {
	chart := valuesChart(t)
	override := filepath.Join(t.TempDir(), "override.yaml")
	if err := os.WriteFile(override, []byte("replicas: 3\nimage:\n  tag: v9\nextra: null\nlabels:\n  tier: cloud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRender(t, "-f", override, "--set", "replicas=5", "--set-string", "labels.zone=007", chart)
	// --set wins over -f; maps merge key by key (team stays); null removes a default; --set-string keeps "007".
	expectContains(t, out, `replicas: "5"`, `image: "tandem:v9"`, "team: edge", "tier: cloud", `zone: "007"`)
	if strings.Contains(out, "extra:") {
		t.Errorf("extra: null in a values file should delete the default:\n%s", out)
	}
}

func TestRequiredAndFailNameTheTemplate(t *testing.T) {
	chart := writeChart(t, map[string]string{
		"values.yaml": "grace: 10\ndrain: 30\n",
		"templates/deployment.yaml": `{{- if lt (int .Values.grace) (int .Values.drain) }}{{ fail "grace must be >= drain" }}{{ end }}
kind: Pod
apiVersion: v1
metadata:
  name: {{ required "name is required" .Values.name }}
`,
	})
	_, err := render(t, chart)
	if err == nil || !strings.Contains(err.Error(), "grace must be >= drain") ||
		!strings.Contains(err.Error(), "demo/templates/deployment.yaml") {
		t.Errorf("fail: got %v", err)
	}
	_, err = render(t, "--set", "grace=60", chart)
	if err == nil || !strings.Contains(err.Error(), "name is required") {
		t.Errorf("required: got %v", err)
	}
	expectContains(t, mustRender(t, "--set", "grace=60,name=p", chart), "name: p")
}

func TestFilesAndCapabilities(t *testing.T) {
	chart := writeChart(t, map[string]string{
		"files/dashboard.json": `{"title": "Tandem"}`,
		"files/skip.json":      "ignored",
		".helmignore":          "files/skip.json\n",
		"templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: files
data:
  {{- (.Files.Glob "files/*.json").AsConfig | nindent 2 }}
  monitor: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
`,
	})
	out := mustRender(t, chart)
	expectContains(t, out, `dashboard.json: '{"title": "Tandem"}'`, `monitor: "false"`, `kube: "v1.29.0"`)
	if strings.Contains(out, "skip.json") {
		t.Errorf(".helmignore'd file reached .Files:\n%s", out)
	}
	expectContains(t, mustRender(t, "-a", "monitoring.coreos.com/v1", chart), `monitor: "true"`)
}

func TestBrokenChartsAreRefused(t *testing.T) {
	cases := []struct {
		name, wanted string
		files        map[string]string
		args         []string
	}{
		{"rendered YAML does not parse", "YAML parse error on demo/templates/bad.yaml",
			map[string]string{"templates/bad.yaml": "kind: Pod\nmetadata:\n  name: [unclosed\n"}, nil},
		{"template syntax", "demo/templates/bad.yaml",
			map[string]string{"templates/bad.yaml": "kind: {{ .Values.x \n"}, nil},
		{"kubeVersion constraint", "incompatible with Kubernetes v1.20.0",
			map[string]string{}, []string{"--kube-version", "1.20.0"}},
		{"no Chart.yaml name", "chart.metadata.name is required",
			map[string]string{"Chart.yaml": "apiVersion: v2\nversion: 0.1.0\n"}, nil},
		{"subchart", "subcharts and dependencies are not supported",
			map[string]string{"charts/sub/Chart.yaml": testChartYAML}, nil},
		{"unknown flag", "unknown flag: --strict", map[string]string{}, []string{"--strict"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, append(c.args, writeChart(t, c.files))...)
			if err == nil || !strings.Contains(err.Error(), c.wanted) {
				t.Errorf("want an error containing %q, got %v", c.wanted, err)
			}
		})
	}
}

func TestNotesAreRenderedButNotManifests(t *testing.T) {
	chart := writeChart(t, map[string]string{
		"templates/NOTES.txt": "Release {{ .Release.Name }} in {{ .Release.Namespace }}.",
		"templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
	})
	out := mustRender(t, "-n", "prod", chart)
	if strings.Contains(out, "Release ") {
		t.Errorf("NOTES.txt printed without --show-notes:\n%s", out)
	}
	expectContains(t, mustRender(t, "--show-notes", "-n", "prod", chart), "NOTES:\nRelease release-name in prod.")
}
