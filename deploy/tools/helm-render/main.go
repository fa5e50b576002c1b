// Command helm-render renders a Helm chart offline, the way `helm template` does.
//
// Why it exists: Helm is not packaged in Debian 12 and nothing may be downloaded in this project's CI,
// yet the chart under helm/tandem must be rendered so that its manifests can be validated. This tool
// reproduces the parts of Helm 3's template engine that a normal chart relies on (helm.sh/helm/v3
// pkg/engine, pkg/chartutil, pkg/strvals and pkg/releaseutil), built from the same pieces Helm uses:
// text/template, sprig v3 and sigs.k8s.io/yaml, all of which Debian does package.
//
// Supported: Chart.yaml metadata and its kubeVersion constraint; values.yaml, --values, --set and
// --set-string merged and coalesced like Helm (null deletes a key); .Values, .Release, .Chart,
// .Capabilities, .Template, .Files (Get, GetBytes, Glob, Lines, AsConfig, AsSecrets) and .helmignore;
// sprig's functions minus env/expandenv plus include, tpl, required, fail, toYaml, fromYaml,
// fromYamlArray, toJson, fromJson, fromJsonArray and lookup (always empty, as in `helm template`);
// Helm's error messages; a YAML parse check of every rendered document; NOTES.txt.
//
// Not supported: subcharts and dependencies (refused), library charts (refused, as Helm does),
// values.schema.json (ignored), toToml, --set-file/--set-json/--set-literal, --strict, hooks (hook
// manifests are printed like any other), and Helm's kind-based manifest ordering: the output is
// ordered by template path.
package main

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

const usageText = `Usage: helm-render [flags] [RELEASE_NAME] CHART_DIR

Renders the chart in CHART_DIR like "helm template" and writes the manifests to stdout, one
"---\n# Source: <chart>/templates/<file>\n<document>" block per YAML document, ordered by template path.

Flags:
  -f, --values FILE          values file merged over the chart's values.yaml (repeatable, "-" = stdin)
      --set key=value        set values (repeatable; a.b=c, a[0]=x, a={x,y}, comma-separated pairs;
                             ints, true/false and null are typed like Helm; null deletes a key)
      --set-string key=value like --set, but every value stays a string
      --release-name NAME    .Release.Name (default "release-name")
  -n, --namespace NS         .Release.Namespace (default "default")
      --kube-version VER     .Capabilities.KubeVersion (default 1.29.0); checked against Chart.yaml kubeVersion
  -a, --api-versions G/V     extra .Capabilities.APIVersions (repeatable or comma-separated); the default
                             set is the built-in group/versions (and group/version/Kind) of Kubernetes 1.29
      --show-notes           after the manifests, print a line "NOTES:" followed by the rendered
                             templates/NOTES.txt (it is always rendered, as Helm does, but only printed here)
  -h, --help                 show this help

values.schema.json is ignored. Subcharts (charts/, dependencies) and library charts are refused.
Exit status: 0 on success, 1 on a chart or template error ("Error: ..." on stderr), 2 on a usage error.
`

type options struct {
	valueFiles, sets, setStrings, apiVersions []string
	releaseName, namespace, kubeVersion       string
	showNotes                                 bool
	chartDir                                  string
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n\n%s", err, usageText)
		os.Exit(2)
	}
	if opts == nil {
		fmt.Print(usageText)
		return
	}
	if err := run(opts, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func parseArgs(args []string) (*options, error) {
	o := &options{releaseName: "release-name", namespace: "default", kubeVersion: "1.29.0"}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "-h" || arg == "--help" {
			return nil, nil
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			positional = append(positional, arg)
			continue
		}
		if arg == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		name, value, hasValue := strings.Cut(arg, "=")
		if name == "--show-notes" {
			if hasValue {
				return nil, fmt.Errorf("flag %s takes no value", name)
			}
			o.showNotes = true
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag needs an argument: %s", name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "-f", "--values":
			o.valueFiles = append(o.valueFiles, strings.Split(value, ",")...)
		case "--set":
			o.sets = append(o.sets, value)
		case "--set-string":
			o.setStrings = append(o.setStrings, value)
		case "--release-name":
			o.releaseName = value
		case "-n", "--namespace":
			o.namespace = value
		case "--kube-version":
			o.kubeVersion = value
		case "-a", "--api-versions":
			o.apiVersions = append(o.apiVersions, strings.Split(value, ",")...)
		default:
			return nil, fmt.Errorf("unknown flag: %s", name)
		}
	}
	switch len(positional) {
	case 1:
		o.chartDir = positional[0]
	case 2: // helm template NAME CHART
		o.releaseName, o.chartDir = positional[0], positional[1]
	default:
		return nil, fmt.Errorf("expected one CHART_DIR (optionally preceded by RELEASE_NAME), got %d arguments", len(positional))
	}
	return o, nil
}

func run(o *options, out io.Writer) error {
	ch, err := loadChart(o.chartDir)
	if err != nil {
		return err
	}
	userValues, err := userSuppliedValues(o)
	if err != nil {
		return err
	}
	caps, err := newCapabilities(o.kubeVersion, o.apiVersions)
	if err != nil {
		return err
	}
	if ch.Metadata.KubeVersion != "" && !compatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s",
			ch.Metadata.KubeVersion, caps.KubeVersion.String())
	}
	values := coalesceValues(userValues, ch.Values, "")
	top := map[string]interface{}{
		"Values": values,
		"Chart":  ch.Metadata,
		"Release": map[string]interface{}{
			"Name":      o.releaseName,
			"Namespace": o.namespace,
			"IsUpgrade": false,
			"IsInstall": true,
			"Revision":  1,
			"Service":   "Helm",
		},
		"Capabilities": caps,
		"Files":        ch.Files,
		"Subcharts":    map[string]interface{}{},
	}
	rendered, err := renderTemplates(ch, top)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	notesName := path.Join(ch.Metadata.Name, "templates", "NOTES.txt")
	var notes string
	for _, name := range names {
		content := rendered[name]
		if strings.HasSuffix(name, "NOTES.txt") { // like Helm: every NOTES.txt is left out of the manifests
			if name == notesName {
				notes = content
			}
			continue
		}
		if strings.TrimSpace(content) == "" {
			continue
		}
		for _, doc := range splitManifests(content) {
			var head simpleHead // releaseutil.SortManifests parses this much of every document
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return fmt.Errorf("YAML parse error on %s: %w", name, err)
			}
			fmt.Fprintf(out, "---\n# Source: %s\n%s\n", name, doc)
		}
	}
	if o.showNotes {
		fmt.Fprintf(out, "NOTES:\n%s\n", strings.TrimSpace(notes))
	}
	return nil
}

// simpleHead is releaseutil.SimpleHead: the fields Helm reads from each rendered document.
type simpleHead struct {
	Version  string `json:"apiVersion"`
	Kind     string `json:"kind,omitempty"`
	Metadata *struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata,omitempty"`
}

// splitManifests is releaseutil.SplitManifests, keeping the documents in order.
func splitManifests(bigFile string) []string {
	var docs []string
	for _, d := range manifestSep.Split(strings.TrimSpace(bigFile), -1) {
		if d != "" {
			docs = append(docs, strings.TrimSpace(d))
		}
	}
	return docs
}

// Metadata mirrors helm.sh/helm/v3/pkg/chart.Metadata, so templates see .Chart.Name, .Chart.AppVersion...
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []*Maintainer     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// Maintainer mirrors chart.Maintainer.
type Maintainer struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

type chartDir struct {
	Metadata  *Metadata
	Values    map[string]interface{}
	Templates map[string][]byte // path relative to the chart root, e.g. templates/x.yaml
	Files     files             // every other file, as .Files sees them
}

// loadChart reads a chart directory the way Helm's loader.LoadDir does (without subcharts).
func loadChart(dir string) (*chartDir, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a chart directory", dir)
	}
	rules, err := loadHelmignore(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil, err
	}
	ch := &chartDir{Values: map[string]interface{}{}, Templates: map[string][]byte{}, Files: files{}}
	var chartYAML []byte
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if rules.ignored(rel, fi.IsDir()) {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if fi.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case rel == "Chart.yaml":
			chartYAML = data
		case rel == "values.yaml":
			if ch.Values, err = readValues(data); err != nil {
				return fmt.Errorf("cannot load values.yaml: %w", err)
			}
		case rel == "values.schema.json", rel == "Chart.lock":
		case strings.HasPrefix(rel, "charts/"), rel == "requirements.yaml", rel == "requirements.lock":
			return fmt.Errorf("%s: subcharts and dependencies are not supported by helm-render", rel)
		case strings.HasPrefix(rel, "templates/"):
			switch path.Ext(rel) {
			case ".yaml", ".yml", ".tpl", ".txt":
				ch.Templates[rel] = data
			}
		default:
			ch.Files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if chartYAML == nil {
		return nil, fmt.Errorf("Chart.yaml file is missing in %s", dir)
	}
	ch.Metadata = &Metadata{}
	if err := yaml.Unmarshal(chartYAML, ch.Metadata); err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %w", err)
	}
	switch {
	case ch.Metadata.Name == "":
		return nil, fmt.Errorf("validation: chart.metadata.name is required")
	case ch.Metadata.Version == "":
		return nil, fmt.Errorf("validation: chart.metadata.version is required")
	case ch.Metadata.Type == "library":
		return nil, fmt.Errorf("library charts are not installable")
	case len(ch.Metadata.Dependencies) > 0:
		return nil, fmt.Errorf("Chart.yaml lists dependencies: subcharts are not supported by helm-render")
	}
	return ch, nil
}

// ignoreRule is one line of .helmignore (a simplified pkg/ignore: globs, "dir/", "!negation").
type ignoreRule struct {
	pattern         string
	negate, dirOnly bool
}

type ignoreRules []ignoreRule

func loadHelmignore(file string) (ignoreRules, error) {
	rules := ignoreRules{{pattern: "templates/.?*"}} // Helm's default rule
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return rules, nil
	} else if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly, line = true, strings.TrimSuffix(line, "/")
		}
		r.pattern = strings.TrimPrefix(line, "/")
		if _, err := path.Match(r.pattern, ""); err != nil {
			return nil, fmt.Errorf(".helmignore: bad pattern %q: %w", line, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func (rules ignoreRules) ignored(rel string, isDir bool) bool {
	ignored := false
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		target := path.Base(rel)
		if strings.Contains(r.pattern, "/") {
			target = rel
		}
		if ok, _ := path.Match(r.pattern, target); ok {
			ignored = !r.negate
		}
	}
	return ignored
}
