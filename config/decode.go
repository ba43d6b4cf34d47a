package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// The file is decoded by walking the yaml.Node tree by hand instead of with
// yaml.Decoder into structs. yaml.v3 gives no line numbers for values that
// decode fine but fail validation, and KnownFields(true) is silently
// ignored under custom UnmarshalYAML(*yaml.Node) methods (go-yaml/yaml#460).
// Walking the tree ourselves makes every level strict, gives each field its
// path and line, and lets us report all problems at once.

// FieldError is one problem found in a configuration file. Parse and Load
// return one or more of them joined with errors.Join; use errors.As to get
// the first.
type FieldError struct {
	File string
	Line int    // 1-based; 0 when the problem concerns the whole file
	Path string // such as "customers[1].batches[3]"; empty for the whole file
	Msg  string
}

// Error formats the problem as "<file>:<line>: <path>: <message>", leaving
// out the line or the path when there is none.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// parseDocument parses data into the root node of its single document.
func parseDocument(data []byte) (*yaml.Node, *FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{Msg: "no configuration"}
		}
		return nil, syntaxError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(err)
		}
		return nil, &FieldError{Line: next.Line, Msg: "more than one YAML document"}
	}
	root := doc.Content[0]
	if isEmpty(root) {
		return nil, &FieldError{Msg: "no configuration"}
	}
	return root, nil
}

// syntaxError keeps yaml.v3's own wording, "yaml: line N: ...", instead of
// our "<file>:<line>:" form: for parser errors yaml.v3 reports the line
// before the one at fault (it prints a 0-based line), so the number is a
// hint rather than a position we could vouch for.
func syntaxError(err error) *FieldError {
	return &FieldError{Msg: err.Error()}
}

// positions remembers the line of every field path seen in the file, so
// that checks made after decoding can point at the right line.
type positions map[string]int

// line returns the line of path or, for a field the file leaves out, of
// its nearest enclosing field.
func (p positions) line(path string) int {
	for {
		if l, ok := p[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// parentPath returns the path one level up: "a.b[2]" -> "a.b" -> "a" -> "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// findings is what decoding and validation learn about a file: where each
// field is, what is wrong, and which values could not be decoded at all
// (validation stays quiet about those, as their values are placeholders).
type findings struct {
	pos     positions
	errs    []*FieldError
	invalid map[string]bool
}

// unusable reports whether the value at path, or one enclosing it, could
// not be decoded.
func (f *findings) unusable(path string) bool {
	for {
		if f.invalid[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = parentPath(path)
	}
}

// decoder walks the node tree into a Config.
type decoder struct {
	*findings
}

// fieldDecoder decodes the value of one mapping key found at path.
type fieldDecoder func(path string, value *yaml.Node)

// decode builds a Config from root, starting from the defaults.
func decode(root *yaml.Node) (*Config, *findings) {
	f := &findings{pos: positions{"": root.Line}, invalid: map[string]bool{}}
	c := defaultConfig()
	d := decoder{f}
	d.config(root, c)
	return c, f
}

func (d *decoder) fail(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// failValue reports a value that could not be decoded and marks its path.
func (d *decoder) failValue(n *yaml.Node, path, format string, args ...any) {
	d.fail(n.Line, path, format, args...)
	d.invalid[path] = true
}

func (d *decoder) config(n *yaml.Node, c *Config) {
	d.mapping(n, "", map[string]fieldDecoder{
		"cloud":                        d.str(&c.Cloud),
		"partner_center":               func(p string, v *yaml.Node) { d.partnerCenter(v, p, &c.PartnerCenter) },
		"auth":                         func(p string, v *yaml.Node) { d.auth(v, p, &c.Auth) },
		"max_failed_devices_per_batch": d.integer(&c.MaxFailedDevicesPerBatch),
		"retention":                    d.longDuration(&c.Retention),
		"forget_removed_batches_after": d.longDuration(&c.ForgetRemovedBatchesAfter),
		"batch_files":                  func(p string, v *yaml.Node) { d.strings(v, p, &c.BatchFiles) },
		"probe":                        func(p string, v *yaml.Node) { d.probe(v, p, &c.Probe) },
		"intake":                       func(p string, v *yaml.Node) { d.intake(v, p, &c.Intake) },
		"customers":                    func(p string, v *yaml.Node) { d.customers(v, p, &c.Customers) },
	})
}

func (d *decoder) partnerCenter(n *yaml.Node, path string, pc *PartnerCenter) {
	d.mapping(n, path, map[string]fieldDecoder{
		"base_url":                d.str(&pc.BaseURL),
		"api_version":             d.str(&pc.APIVersion),
		"request_timeout":         d.duration(&pc.RequestTimeout),
		"max_concurrent_requests": d.integer(&pc.MaxConcurrentRequests),
		"refresh_interval":        d.duration(&pc.RefreshInterval),
		"max_response_size":       d.byteSize(&pc.MaxResponseSize),
		"max_retry_after":         d.duration(&pc.MaxRetryAfter),
		"http_client":             func(p string, v *yaml.Node) { d.httpClient(v, p, &pc.HTTPClient) },
	})
}

func (d *decoder) probe(n *yaml.Node, path string, pr *Probe) {
	d.mapping(n, path, map[string]fieldDecoder{
		"allow_unconfigured_customers": d.boolean(&pr.AllowUnconfiguredCustomers),
		"allow_unlisted_batches":       d.boolean(&pr.AllowUnlistedBatches),
		"forget_unprobed_after":        d.longDuration(&pr.ForgetUnprobedAfter),
		"max_admissions_per_minute":    d.integer(&pr.MaxAdmissionsPerMinute),
	})
}

func (d *decoder) intake(n *yaml.Node, path string, in *Intake) {
	d.mapping(n, path, map[string]fieldDecoder{
		"bearer_token_files": func(p string, v *yaml.Node) { d.strings(v, p, &in.BearerTokenFiles) },
		"max_batches":        d.integer(&in.MaxBatches),
	})
}

func (d *decoder) auth(n *yaml.Node, path string, a *Auth) {
	d.mapping(n, path, map[string]fieldDecoder{
		"tenant_id":          d.str(&a.TenantID),
		"client_id":          d.str(&a.ClientID),
		"client_secret":      d.secret(&a.ClientSecret),
		"client_secret_file": d.str(&a.ClientSecretFile),
		"refresh_token_file": d.str(&a.RefreshTokenFile),
		"access_token_file":  d.str(&a.AccessTokenFile),
		"token_url":          d.str(&a.TokenURL),
		"resource":           d.str(&a.Resource),

		"client_certificate_file": d.str(&a.ClientCertificateFile),
		"send_certificate_chain":  d.boolean(&a.SendCertificateChain),

		"client_certificate_password_file": d.str(&a.ClientCertificatePasswordFile),
		"federated_token_file":             d.str(&a.FederatedTokenFile),
	})
}

// customers appends one Customer per item, broken items included, so that
// customers[i] in the file is c.Customers[i] for the validation messages.
func (d *decoder) customers(n *yaml.Node, path string, dst *[]Customer) {
	d.sequence(n, path, func(p string, item *yaml.Node) {
		var c Customer
		d.mapping(item, p, map[string]fieldDecoder{
			"id":      d.str(&c.ID),
			"name":    d.str(&c.Name),
			"batches": func(p string, v *yaml.Node) { d.strings(v, p, &c.Batches) },
		})
		*dst = append(*dst, c)
	})
}

// strings decodes a sequence of strings, keeping broken items as "" so
// that indexes match the file.
func (d *decoder) strings(n *yaml.Node, path string, dst *[]string) {
	d.sequence(n, path, func(p string, item *yaml.Node) {
		var s string
		d.str(&s)(p, item)
		*dst = append(*dst, s)
	})
}

// mapping decodes a mapping node with one fieldDecoder per known key.
// Unknown and repeated keys are errors. A key whose value is empty or null
// is recorded but not decoded, so the field keeps its default.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]fieldDecoder) {
	if !d.expectKind(n, path, yaml.MappingNode) {
		return
	}
	firstSeen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			d.fail(key.Line, path, "keys must be strings, got %s", describe(key))
			continue
		}
		keyPath := joinPath(path, key.Value)
		if key.Tag == "!!merge" {
			d.fail(key.Line, keyPath, "merge keys are not supported")
			continue
		}
		if first, seen := firstSeen[key.Value]; seen {
			d.fail(key.Line, keyPath, "repeated key, first set at line %d", first)
			continue
		}
		firstSeen[key.Value] = key.Line
		decodeField, known := fields[key.Value]
		if !known {
			d.fail(key.Line, keyPath, "unknown field%s", suggestion(key.Value, fields))
			continue
		}
		d.pos[keyPath] = key.Line
		if !isEmpty(value) {
			decodeField(keyPath, value)
		}
	}
}

// sequence calls decodeItem for every item of a sequence node. Empty items
// are reported, then still passed on so that indexes stay aligned.
func (d *decoder) sequence(n *yaml.Node, path string, decodeItem func(path string, item *yaml.Node)) {
	if !d.expectKind(n, path, yaml.SequenceNode) {
		return
	}
	for i, item := range n.Content {
		itemPath := indexPath(path, i)
		d.pos[itemPath] = item.Line
		item = resolveAlias(item)
		if isEmpty(item) {
			d.failValue(item, itemPath, "empty entry")
		}
		decodeItem(itemPath, item)
	}
}

func (d *decoder) expectKind(n *yaml.Node, path string, kind yaml.Kind) bool {
	if n.Kind == kind && !isEmpty(n) {
		return true
	}
	if !d.invalid[path] {
		d.failValue(n, path, "expected %s, got %s", describeKind(kind), describe(n))
	}
	return false
}

func (d *decoder) str(dst *string) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if d.expectKind(n, path, yaml.ScalarNode) {
			*dst = n.Value
		}
	}
}

// secret decodes like str. Its messages must never show the value.
func (d *decoder) secret(dst *Secret) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if d.expectKind(n, path, yaml.ScalarNode) {
			*dst = Secret(n.Value)
		}
	}
}

func (d *decoder) integer(dst *int) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if !d.expectKind(n, path, yaml.ScalarNode) {
			return
		}
		var v int
		if n.Tag != "!!int" || n.Decode(&v) != nil {
			d.failValue(n, path, "%q is not an integer", n.Value)
			return
		}
		*dst = v
	}
}

// boolean accepts true and false (YAML 1.2 spellings only).
func (d *decoder) boolean(dst *bool) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if !d.expectKind(n, path, yaml.ScalarNode) {
			return
		}
		switch n.Value {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			d.failValue(n, path, "%q is not true or false", n.Value)
		}
	}
}

// duration accepts Go duration strings ("30s", "1m30s", "250ms") and 0.
func (d *decoder) duration(dst *time.Duration) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if !d.expectKind(n, path, yaml.ScalarNode) {
			return
		}
		v, err := time.ParseDuration(n.Value)
		if err != nil {
			d.failValue(n, path, "%q is not a duration such as 30s or 1m30s", n.Value)
			return
		}
		*dst = v
	}
}

// longDuration accepts Prometheus durations, whose units go up to days,
// weeks and years ("30d", "12h", "1w"), and 0.
func (d *decoder) longDuration(dst *time.Duration) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if !d.expectKind(n, path, yaml.ScalarNode) {
			return
		}
		v, err := model.ParseDuration(n.Value)
		if err != nil {
			d.failValue(n, path, "%q is not a duration such as 30d, 12h or 1w", n.Value)
			return
		}
		*dst = time.Duration(v)
	}
}

// byteSize accepts a number of bytes or a size with a base-2 unit, where
// KB and KiB both mean 1024 bytes ("64MiB", "1GB").
func (d *decoder) byteSize(dst *int64) fieldDecoder {
	return func(path string, n *yaml.Node) {
		if !d.expectKind(n, path, yaml.ScalarNode) {
			return
		}
		v, err := parseByteSize(n)
		if err != nil {
			d.failValue(n, path, "%q is not a size such as 1048576 or 64MiB", n.Value)
			return
		}
		*dst = v
	}
}

func parseByteSize(n *yaml.Node) (int64, error) {
	if n.Tag == "!!int" {
		var v int64
		err := n.Decode(&v)
		return v, err
	}
	v, err := units.ParseBase2Bytes(n.Value)
	return int64(v), err
}

// resolveAlias returns the node an alias (*name) points to. Anchors always
// sit on real nodes, so one step is enough.
func resolveAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isEmpty reports a null value ("key:", "~", "null") or an empty string.
func isEmpty(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "")
}

func describeKind(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// describe names what a node is without showing its value, which might be
// a secret.
func describe(n *yaml.Node) string {
	if isEmpty(n) {
		return "an empty value"
	}
	if n.Kind != yaml.ScalarNode {
		return describeKind(n.Kind)
	}
	switch n.Tag {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	default:
		return "a string"
	}
}

// suggestion returns " (did you mean x?)" when key is a likely misspelling
// of a known field x, and "" otherwise.
func suggestion(key string, fields map[string]fieldDecoder) string {
	known := make([]string, 0, len(fields))
	for name := range fields {
		known = append(known, name)
	}
	sort.Strings(known) // a deterministic pick among equally close names
	best, bestDist := "", 3
	for _, name := range known {
		if dist := editDistance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	// Two edits turn any two-letter key into any other; ask for a key
	// long enough that the match means something.
	if best == "" || 2*bestDist >= len(key) {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance counts the single-byte insertions, deletions, substitutions
// and swaps of neighbours that turn a into b (the optimal string alignment
// distance), so that the common typo "naem" is one step from "name".
func editDistance(a, b string) int {
	// Three rows of the usual dynamic-programming table: two back, one
	// back and the current one.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
