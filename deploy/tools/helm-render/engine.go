package main

// The template engine: helm.sh/helm/v3/pkg/engine (render, include, tpl, required, fail, error
// clean-up), the template functions of pkg/engine/funcs.go, .Files and .Capabilities.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

const (
	recursionMaxNums = 1000 // include's nesting limit, as in Helm
	warnStartDelim   = "HELM_ERR_START"
	warnEndDelim     = "HELM_ERR_END"
)

var (
	warnRegex   = regexp.MustCompile(warnStartDelim + `((?s).*)` + warnEndDelim)
	manifestSep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")
)

// renderTemplates parses every template into one set (so any file can include any other's defines,
// and a template file itself can be included by its name) and executes each non-partial one.
// It returns the output keyed by template name ("<chart>/templates/<file>").
func renderTemplates(ch *chartDir, top map[string]interface{}) (map[string]string, error) {
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	included := map[string]int{}
	t.Funcs(funcMap(t, included))

	basePath := path.Join(ch.Metadata.Name, "templates")
	var names []string
	sources := map[string]string{}
	for rel, data := range ch.Templates {
		name := path.Join(ch.Metadata.Name, rel)
		names = append(names, name)
		sources[name] = string(data)
	}
	// Helm parses the deepest paths first, reverse-alphabetically: that decides which of two
	// duplicate defines wins (the last one parsed).
	sort.Slice(names, func(i, j int) bool {
		ci, cj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if ci != cj {
			return ci > cj
		}
		return names[i] > names[j]
	})
	for _, name := range names {
		if _, err := t.New(name).Parse(sources[name]); err != nil {
			return nil, cleanupParseError(name, err)
		}
	}

	sort.Strings(names)
	rendered := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue // partials only define
		}
		top["Template"] = map[string]interface{}{"Name": name, "BasePath": basePath}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, top); err != nil {
			return nil, cleanupExecError(name, err)
		}
		// missingkey=zero still prints "<no value>" for missing map keys; Helm removes it.
		rendered[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

func funcMap(t *template.Template, included map[string]int) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"include":       includeFun(t, included),
		"tpl":           tplFun(t, included),
		"required": func(warn string, val interface{}) (interface{}, error) {
			if s, ok := val.(string); val == nil || (ok && s == "") {
				return val, errors.New(warnWrap(warn))
			}
			return val, nil
		},
		"fail": func(msg string) (string, error) { return "", errors.New(warnWrap(msg)) },
		// helm template never talks to a cluster, so lookup finds nothing.
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func warnWrap(warn string) string { return warnStartDelim + warn + warnEndDelim }

func includeFun(t *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		if included[name] > recursionMaxNums {
			return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
}

func tplFun(parent *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(tpl string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		t.Option("missingkey=zero")
		// Re-inject include and tpl so that they see the cloned set.
		t.Funcs(template.FuncMap{"include": includeFun(t, included), "tpl": tplFun(t, included)})
		t, err = t.New(parent.Name()).Parse(tpl)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", tpl, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", tpl, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

// cleanupParseError turns "template: name:line: function "x" not defined" into Helm's message.
func cleanupParseError(filename string, err error) error {
	tokens := strings.Split(err.Error(), ": ")
	if len(tokens) == 1 {
		return fmt.Errorf("parse error in (%s): %s", filename, err)
	}
	return fmt.Errorf("parse error at (%s): %s", tokens[1], tokens[len(tokens)-1])
}

// cleanupExecError reports required/fail messages as "execution error at (name:line:col): message".
func cleanupExecError(filename string, err error) error {
	if _, isExecError := err.(template.ExecError); !isExecError {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error in (%s): %s", filename, err)
	}
	if parts := warnRegex.FindStringSubmatch(tokens[2]); len(parts) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", tokens[1], parts[1])
	}
	return err
}

// toYAML is Helm's toYaml: sigs.k8s.io/yaml, without the trailing newline, "" on error.
func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(str string) map[string]interface{} {
	m := make(map[string]interface{})
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// files is .Files: the chart's files outside templates/, keyed by slash path from the chart root.
type files map[string][]byte

func (f files) GetBytes(name string) []byte {
	if v, ok := f[name]; ok {
		return v
	}
	return []byte{}
}

func (f files) Get(name string) string { return string(f.GetBytes(name)) }

// Glob matches like gobwas/glob with '/' as separator: * and ? stay within a path element, ** does not.
func (f files) Glob(pattern string) files {
	re, err := globRegexp(pattern)
	if err != nil {
		re = regexp.MustCompile(".*")
	}
	nf := files{}
	for name, contents := range f {
		if re.MatchString(name) {
			nf[name] = contents
		}
	}
	return nf
}

func (f files) AsConfig() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}

func (f files) AsSecrets() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	return toYAML(m)
}

func (f files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func globRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	alternation := 0
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(pattern[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ in %q", pattern)
			}
			class := pattern[i+1 : i+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		case c == '{':
			alternation++
			b.WriteString("(?:")
		case c == '}' && alternation > 0:
			alternation--
			b.WriteString(")")
		case c == ',' && alternation > 0:
			b.WriteString("|")
		case c == '\\' && i+1 < len(pattern):
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// capabilities mirrors chartutil.Capabilities.
type capabilities struct {
	APIVersions versionSet
	KubeVersion kubeVersion
	HelmVersion helmVersion
}

type kubeVersion struct{ Version, Major, Minor string }

func (kv kubeVersion) String() string     { return kv.Version }
func (kv kubeVersion) GitVersion() string { return kv.Version }

type helmVersion struct{ Version, GitCommit, GitTreeState, GoVersion string }

type versionSet []string

// Has reports whether a group/version (or group/version/Kind) is available.
func (v versionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// builtinAPIs are the group/versions a Kubernetes 1.29 API server serves by default, with their kinds.
var builtinAPIs = map[string]string{
	"v1": "Binding ComponentStatus ConfigMap Endpoints Event LimitRange Namespace Node PersistentVolume " +
		"PersistentVolumeClaim Pod PodTemplate ReplicationController ResourceQuota Secret Service ServiceAccount",
	"admissionregistration.k8s.io/v1":      "MutatingWebhookConfiguration ValidatingWebhookConfiguration",
	"apiextensions.k8s.io/v1":              "CustomResourceDefinition",
	"apiregistration.k8s.io/v1":            "APIService",
	"apps/v1":                              "ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet",
	"authentication.k8s.io/v1":             "SelfSubjectReview TokenReview",
	"authorization.k8s.io/v1":              "LocalSubjectAccessReview SelfSubjectAccessReview SelfSubjectRulesReview SubjectAccessReview",
	"autoscaling/v1":                       "HorizontalPodAutoscaler",
	"autoscaling/v2":                       "HorizontalPodAutoscaler",
	"batch/v1":                             "CronJob Job",
	"certificates.k8s.io/v1":               "CertificateSigningRequest",
	"coordination.k8s.io/v1":               "Lease",
	"discovery.k8s.io/v1":                  "EndpointSlice",
	"events.k8s.io/v1":                     "Event",
	"flowcontrol.apiserver.k8s.io/v1":      "FlowSchema PriorityLevelConfiguration",
	"flowcontrol.apiserver.k8s.io/v1beta3": "FlowSchema PriorityLevelConfiguration",
	"networking.k8s.io/v1":                 "Ingress IngressClass NetworkPolicy",
	"node.k8s.io/v1":                       "RuntimeClass",
	"policy/v1":                            "PodDisruptionBudget",
	"rbac.authorization.k8s.io/v1":         "ClusterRole ClusterRoleBinding Role RoleBinding",
	"scheduling.k8s.io/v1":                 "PriorityClass",
	"storage.k8s.io/v1":                    "CSIDriver CSINode CSIStorageCapacity StorageClass VolumeAttachment",
}

func newCapabilities(version string, extraAPIs []string) (*capabilities, error) {
	sv, err := semver.NewVersion(version)
	if err != nil {
		return nil, fmt.Errorf("invalid kube version %q: %w", version, err)
	}
	var apis versionSet
	for gv, kinds := range builtinAPIs {
		apis = append(apis, gv)
		for _, kind := range strings.Fields(kinds) {
			apis = append(apis, gv+"/"+kind)
		}
	}
	sort.Strings(apis)
	for _, a := range extraAPIs {
		if a = strings.TrimSpace(a); a != "" {
			apis = append(apis, a)
		}
	}
	return &capabilities{
		APIVersions: apis,
		KubeVersion: kubeVersion{
			Version: "v" + sv.String(),
			Major:   strconv.FormatUint(sv.Major(), 10),
			Minor:   strconv.FormatUint(sv.Minor(), 10),
		},
		HelmVersion: helmVersion{Version: "v3.14.0", GitTreeState: "clean", GoVersion: runtime.Version()},
	}, nil
}

// compatibleRange is chartutil.IsCompatibleRange: an unparsable constraint is never satisfied.
func compatibleRange(constraint, version string) bool {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return false
	}
	v, err := semver.NewVersion(version)
	if err != nil {
		return false
	}
	return c.Check(v)
}
