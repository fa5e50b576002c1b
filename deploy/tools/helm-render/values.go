package main

// Values: reading (chartutil.ReadValues), user values (pkg/cli/values: --values, --set, --set-string),
// the --set syntax (pkg/strvals) and coalescing with the chart's defaults (chartutil.CoalesceValues).

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// readValues parses a values document. Like Helm, it goes through sigs.k8s.io/yaml, so numbers become
// float64 (hence the `int` casts charts need) and an empty document is an empty map.
func readValues(data []byte) (map[string]interface{}, error) {
	vals := map[string]interface{}{}
	if len(strings.TrimSpace(string(data))) == 0 {
		return vals, nil
	}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, err
	}
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, nil
}

// userSuppliedValues merges the --values files in order, then applies --set and --set-string.
// null values are kept here; coalesceValues removes the keys they name.
func userSuppliedValues(o *options) (map[string]interface{}, error) {
	base := map[string]interface{}{}
	for _, file := range o.valueFiles {
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, err
		}
		current, err := readValues(data)
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", file, err)
		}
		base = mergeMaps(base, current)
	}
	for _, s := range o.sets {
		if err := parseSet(s, base, false); err != nil {
			return nil, fmt.Errorf("failed parsing --set data: %w", err)
		}
	}
	for _, s := range o.setStrings {
		if err := parseSet(s, base, true); err != nil {
			return nil, fmt.Errorf("failed parsing --set-string data: %w", err)
		}
	}
	return base, nil
}

// mergeMaps: maps merge recursively, anything else in b replaces what a has.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(bv, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesceValues fills user values (which win) with the chart's defaults; a user null deletes the key.
func coalesceValues(user, defaults map[string]interface{}, prefix string) map[string]interface{} {
	for key, dv := range defaults {
		uv, ok := user[key]
		switch {
		case !ok:
			user[key] = dv
		case uv == nil:
			delete(user, key)
		default:
			um, uIsMap := uv.(map[string]interface{})
			dm, dIsMap := dv.(map[string]interface{})
			switch {
			case uIsMap && dIsMap:
				coalesceValues(um, dm, prefix+key+".")
			case uIsMap && dv != nil:
				fmt.Fprintf(os.Stderr, "warning: cannot overwrite table with non table for %s%s (%v)\n", prefix, key, dv)
			case dIsMap:
				fmt.Fprintf(os.Stderr, "warning: destination for %s%s is a table. Ignoring non-table value (%v)\n", prefix, key, uv)
			}
		}
	}
	return user
}

// parseSet applies one --set argument: comma-separated key=value pairs, keys with dots and [index],
// values {a,b} for lists, and backslash escapes.
func parseSet(s string, dst map[string]interface{}, asString bool) error {
	for _, pair := range splitPairs(s) {
		key, raw, found := cutUnescaped(pair, '=')
		if !found {
			return fmt.Errorf("key %q has no value", pair)
		}
		path, err := parseKey(key)
		if err != nil {
			return err
		}
		var val interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			list := []interface{}{}
			if inner := raw[1 : len(raw)-1]; inner != "" {
				for _, item := range splitUnescaped(inner, ',') {
					list = append(list, typedVal(unescape(item), asString))
				}
			}
			val = list
		} else {
			val = typedVal(unescape(raw), asString)
		}
		if _, err := setPath(dst, path, val); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// splitPairs splits at unescaped commas outside a {list} value.
func splitPairs(s string) []string {
	var pairs []string
	start, inValue, inList := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '=' && !inValue:
			inValue = true
			inList = i+1 < len(s) && s[i+1] == '{'
		case c == '}' && inList:
			inList = false
		case c == ',' && !inList:
			pairs = append(pairs, s[start:i])
			start, inValue = i+1, false
		}
	}
	return append(pairs, s[start:])
}

func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		} else if s[i] == sep {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func cutUnescaped(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		} else if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// typedVal is strvals.typedVal: true/false/null and integers not starting with 0 get their type.
func typedVal(val string, asString bool) interface{} {
	if asString {
		return val
	}
	switch {
	case strings.EqualFold(val, "true"):
		return true
	case strings.EqualFold(val, "false"):
		return false
	case strings.EqualFold(val, "null"):
		return nil
	case val == "0":
		return int64(0)
	}
	if val != "" && val[0] != '0' {
		if iv, err := strconv.ParseInt(val, 10, 64); err == nil {
			return iv
		}
	}
	return val
}

// pathElem is one step of a --set key: a map key, or a list index when index >= 0.
type pathElem struct {
	key   string
	index int
}

func parseKey(key string) ([]pathElem, error) {
	var path []pathElem
	for _, part := range splitUnescaped(key, '.') {
		name := part
		var indexes []int
		for strings.HasSuffix(name, "]") {
			open := strings.LastIndexByte(name, '[')
			if open < 0 {
				return nil, fmt.Errorf("key %q has an unbalanced ]", key)
			}
			n, err := strconv.Atoi(name[open+1 : len(name)-1])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("key %q has an invalid list index", key)
			}
			if n > 65536 {
				return nil, fmt.Errorf("index of %d is greater than maximum supported index of 65536", n)
			}
			indexes = append([]int{n}, indexes...)
			name = name[:open]
		}
		if name == "" {
			return nil, fmt.Errorf("key %q has an empty name", key)
		}
		path = append(path, pathElem{key: unescape(name), index: -1})
		for _, n := range indexes {
			path = append(path, pathElem{index: n})
		}
	}
	return path, nil
}

// setPath stores val at path under cur, creating (or replacing non-matching) maps and lists on the way.
func setPath(cur interface{}, path []pathElem, val interface{}) (interface{}, error) {
	if len(path) == 0 {
		return val, nil
	}
	e := path[0]
	if e.index < 0 {
		m, ok := cur.(map[string]interface{})
		if !ok {
			m = map[string]interface{}{}
		}
		child, err := setPath(m[e.key], path[1:], val)
		m[e.key] = child
		return m, err
	}
	list, _ := cur.([]interface{})
	for len(list) <= e.index {
		list = append(list, nil)
	}
	child, err := setPath(list[e.index], path[1:], val)
	list[e.index] = child
	return list, err
}
