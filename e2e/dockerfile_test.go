package e2e

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No container engine is assumed where the tests run, so these tests check
// what can be checked without one: the Dockerfile's go build line, run as
// is on the context .dockerignore leaves, gives a static binary with the
// version injected, and the final stage is consistent with the program.

// dockerBuildArgs are the test's values for the builder stage's ARGs.
var dockerBuildArgs = map[string]string{
	"VERSION":    "1.2.3-test",
	"REVISION":   "0123456789abcdef0123456789abcdef01234567",
	"BRANCH":     "test-branch",
	"BUILD_DATE": "2026-03-02T09:00:00Z",
}

func TestDockerfileBuildsStaticVersionedBinary(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	builder, run := dockerGoBuild(t, stages)
	env, goArgs := dockerBuildCommand(t, builder, run)

	for _, want := range []string{"CGO_ENABLED=0"} {
		if !slices.Contains(env, want) {
			t.Errorf("go build runs with %v, want %s", env, want)
		}
	}
	if !slices.Contains(goArgs, "-trimpath") {
		t.Errorf("go build flags %v lack -trimpath", goArgs)
	}

	bin := filepath.Join(t.TempDir(), "partnercenter_exporter")
	goArgs, _ = replaceOutput(t, goArgs, bin)
	contextDir := dockerContext(t)
	cmd := exec.CommandContext(t.Context(), "go", goArgs...)
	cmd.Dir = contextDir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s in the build context: %v\n%s", strings.Join(goArgs, " "), err, out)
	}

	checkStaticELF(t, bin)
	checkVersionOutput(t, bin)
}

func checkStaticELF(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a PT_INTERP program header: it needs a dynamic loader", path)
		}
	}
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		t.Fatalf("read dynamic section: %v", err)
	}
	if len(needed) > 0 {
		t.Errorf("%s needs shared libraries %v", path, needed)
	}
}

func checkVersionOutput(t *testing.T, path string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", path, err, out)
	}
	v := dockerBuildArgs
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^partnercenter_exporter, version ` + regexp.QuoteMeta(v["VERSION"]) +
			` \(branch: ` + regexp.QuoteMeta(v["BRANCH"]) + `, revision: ` + regexp.QuoteMeta(v["REVISION"]) + `\)$`),
		regexp.MustCompile(`(?m)^\s+build user:\s+docker$`),
		regexp.MustCompile(`(?m)^\s+build date:\s+` + regexp.QuoteMeta(v["BUILD_DATE"]) + `$`),
	}
	for _, re := range want {
		if !re.Match(out) {
			t.Errorf("--version output does not match %s:\n%s", re, out)
		}
	}
}

func TestDockerfileFinalStage(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	builder, run := dockerGoBuild(t, stages)
	_, goArgs := dockerBuildCommand(t, builder, run)
	_, builtPath := replaceOutput(t, goArgs, "")
	final := stages[len(stages)-1]

	// The exact version, not the minor: a floating golang:1.26 may be a
	// patch release older than go.mod's go line, which a toolchain run
	// with GOTOOLCHAIN=local refuses. A variant (-bookworm) and a digest
	// may follow.
	t.Run("builder Go version is go.mod's", func(t *testing.T) {
		goLine := goModGoVersion(t)
		if !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goLine) + `(-[a-z0-9]+)?(@sha256:[0-9a-f]{64})?$`).MatchString(builder.from) {
			t.Errorf("builder stage is FROM %s, want golang:%s (go.mod's go line)", builder.from, goLine)
		}
	})
	t.Run("bases are pinned", func(t *testing.T) {
		for _, st := range stages {
			ref, _, _ := strings.Cut(st.from, "@")
			if _, tag, ok := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":"); !ok || tag == "latest" {
				t.Errorf("FROM %s: no tag, or latest", st.from)
			}
			if d, ok := strings.CutPrefix(st.from[len(ref):], "@"); ok && !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(d) {
				t.Errorf("FROM %s: malformed digest", st.from)
			}
		}
	})
	t.Run("EXPOSE is the default port", func(t *testing.T) {
		defaultPort := exporterDefaultPort(t)
		want := strings.TrimPrefix(defaultPort, ":")
		got := final.all("EXPOSE")
		if len(got) != 1 || (got[0] != want && got[0] != want+"/tcp") {
			t.Errorf("EXPOSE %v, want %s (the binary's default listen address %q)", got, want, defaultPort)
		}
	})
	t.Run("runs as non-root", func(t *testing.T) {
		users := final.all("USER")
		if len(users) == 0 {
			t.Fatal("the final stage sets no USER")
		}
		user, _, _ := strings.Cut(users[len(users)-1], ":")
		if user == "root" || user == "0" || user == "" {
			t.Errorf("the final stage runs as USER %s", users[len(users)-1])
		}
	})
	t.Run("ENTRYPOINT is the built binary", func(t *testing.T) {
		copied := ""
		for _, c := range final.all("COPY") {
			fields := strings.Fields(c)
			if len(fields) == 3 && fields[0] == "--from="+builder.name && fields[1] == builtPath {
				copied = fields[2]
			}
		}
		if copied == "" {
			t.Fatalf("the final stage does not COPY --from=%s %s", builder.name, builtPath)
		}
		entrypoint := final.execForm(t, "ENTRYPOINT")
		if len(entrypoint) != 1 || entrypoint[0] != copied {
			t.Errorf("ENTRYPOINT %q, want [%q]", entrypoint, copied)
		}
	})
	t.Run("CMD reads the documented configuration path", func(t *testing.T) {
		cmd := final.execForm(t, "CMD")
		want := []string{"--config.file=/etc/partnercenter_exporter/partnercenter.yml"}
		if strings.Join(cmd, " ") != strings.Join(want, " ") {
			t.Errorf("CMD %q, want %q", cmd, want)
		}
		// That the program accepts these arguments is checked at the
		// root, by TestShippedCommandLines with the program's own parser.
	})
}

func TestDockerignore(t *testing.T) {
	rules := readDockerignore(t, ".dockerignore")
	tests := []struct {
		path     string
		excluded bool
	}{
		{"main.go", false},
		{"go.mod", false},
		{"go.sum", false},
		{"collector/collector.go", false},
		{"partnercenter/partnercentertest/server.go", false},
		{"main_test.go", true},
		{"config/config_test.go", true},
		{"config/testdata/secrets/client_secret", true},
		{".git/config", true},
		{"partnercenter.yml", true},
		{"partnercenter-app-user.yml", true},
		{"secrets/refresh_token", true},
		{"examples/partnercenter.yml", true},
		{"partnercenter_exporter", true},
		{"README.md", true},
		{"deploy/go.mod", true},
		{"deploy/helm/partnercenter-exporter/values.yaml", true},
	}
	for _, tt := range tests {
		if got := rules.excludes(tt.path); got != tt.excluded {
			t.Errorf("%s: excluded %t, want %t", tt.path, got, tt.excluded)
		}
	}
}

// dockerStage is one FROM section of a Dockerfile.
type dockerStage struct {
	from string
	name string
	// instructions in order, as keyword and the rest of the line.
	instructions [][2]string
}

// all returns the arguments of every instruction with the keyword.
func (s dockerStage) all(keyword string) []string {
	var out []string
	for _, in := range s.instructions {
		if in[0] == keyword {
			out = append(out, in[1])
		}
	}
	return out
}

// execForm returns the JSON (exec) form arguments of the last keyword
// instruction.
func (s dockerStage) execForm(t *testing.T, keyword string) []string {
	t.Helper()
	all := s.all(keyword)
	if len(all) == 0 {
		t.Fatalf("no %s in the final stage", keyword)
	}
	var args []string
	if err := json.Unmarshal([]byte(all[len(all)-1]), &args); err != nil {
		t.Fatalf("%s %s is not in exec form: %v", keyword, all[len(all)-1], err)
	}
	return args
}

// parseDockerfile splits a Dockerfile into stages. It follows the parts of
// the format the project uses: comments, line continuations, FROM ... AS.
func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	for _, line := range dockerLogicalLines(string(data)) {
		keyword, rest, _ := strings.Cut(line, " ")
		keyword, rest = strings.ToUpper(keyword), strings.TrimSpace(rest)
		if keyword == "FROM" {
			fields := strings.Fields(rest)
			s := dockerStage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			continue // ARGs before the first FROM; the project has none.
		}
		last := &stages[len(stages)-1]
		last.instructions = append(last.instructions, [2]string{keyword, rest})
	}
	if len(stages) == 0 {
		t.Fatalf("%s has no FROM", path)
	}
	return stages
}

// dockerLogicalLines joins continued lines and drops comments and blank
// lines, as the Dockerfile parser does (comment lines inside a
// continuation are dropped too).
func dockerLogicalLines(text string) []string {
	var lines []string
	var current strings.Builder
	for raw := range strings.SplitSeq(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && current.Len() == 0) {
			continue
		}
		if body, continued := strings.CutSuffix(strings.TrimRight(raw, " \t"), `\`); continued {
			current.WriteString(body)
			continue
		}
		current.WriteString(raw)
		lines = append(lines, strings.TrimSpace(current.String()))
		current.Reset()
	}
	if current.Len() > 0 {
		lines = append(lines, strings.TrimSpace(current.String()))
	}
	return lines
}

// dockerGoBuild finds the stage and the RUN instruction that run go build.
func dockerGoBuild(t *testing.T, stages []dockerStage) (dockerStage, string) {
	t.Helper()
	for _, s := range stages {
		for _, run := range s.all("RUN") {
			if strings.Contains(run, "go build") {
				if s.name == "" {
					t.Fatalf("the stage that runs go build has no name to COPY --from")
				}
				return s, run
			}
		}
	}
	t.Fatal("no RUN ... go build in the Dockerfile")
	return dockerStage{}, ""
}

// dockerBuildCommand expands the RUN line as the shell in the builder
// would, with the stage's ARGs set to the test's values, and splits it
// into the environment assignments and the go arguments.
func dockerBuildCommand(t *testing.T, stage dockerStage, run string) (env, goArgs []string) {
	t.Helper()
	declared := map[string]bool{}
	for _, arg := range stage.all("ARG") {
		name, _, _ := strings.Cut(arg, "=")
		declared[name] = true
	}
	for name := range dockerBuildArgs {
		if !declared[name] {
			t.Errorf("the builder stage declares no ARG %s", name)
		}
	}
	words, err := shellWords(run, func(name string) (string, error) {
		if !declared[name] {
			return "", fmt.Errorf("$%s is not a declared ARG", name)
		}
		return dockerBuildArgs[name], nil
	})
	if err != nil {
		t.Fatalf("RUN %s: %v", run, err)
	}
	for len(words) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("RUN %s is not a single go build command", run)
	}
	return env, words[1:]
}

// replaceOutput returns args with the -o value replaced by path, and the
// value it had.
func replaceOutput(t *testing.T, args []string, path string) ([]string, string) {
	t.Helper()
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == "-o" && i+1 < len(out) {
			old := out[i+1]
			out[i+1] = path
			return out, old
		}
	}
	t.Fatalf("go build %v has no -o", args)
	return nil, ""
}

var shellVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// shellWords splits a POSIX shell command line into words, expanding $VAR
// and ${VAR} outside single quotes. Anything beyond one simple command
// (operators, command substitution, globs) is an error, so that the test
// never runs something other than what the Dockerfile says.
func shellWords(line string, lookup func(string) (string, error)) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord, quote := false, rune(0)
	runes := []rune(line)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case r == '\\':
			i++
			if i == len(runes) {
				return nil, errors.New("trailing backslash")
			}
			if quote == '"' && !strings.ContainsRune("\"\\$`", runes[i]) {
				word.WriteRune('\\')
			}
			word.WriteRune(runes[i])
			inWord = true
		case r == '$':
			value, n, err := expandVar(runes[i+1:], lookup)
			if err != nil {
				return nil, err
			}
			word.WriteString(value)
			i += n
			inWord = true
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '`':
				return nil, errors.New("command substitution is not supported")
			default:
				word.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case strings.ContainsRune(";&|<>()`*?[]{}~#", r):
			return nil, fmt.Errorf("shell syntax %q is not supported", r)
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// expandVar expands the variable after a '$'; it returns the value and
// how many runes it used.
func expandVar(rest []rune, lookup func(string) (string, error)) (string, int, error) {
	s := string(rest)
	if strings.HasPrefix(s, "{") {
		end := strings.IndexRune(s, '}')
		if end < 0 || !shellVarName.MatchString(s[1:end]) || len(shellVarName.FindString(s[1:end])) != end-1 {
			return "", 0, fmt.Errorf("unsupported expansion $%s", s)
		}
		value, err := lookup(s[1:end])
		return value, len([]rune(s[:end+1])), err
	}
	name := shellVarName.FindString(s)
	if name == "" {
		return "", 0, fmt.Errorf("unsupported expansion $%s", s)
	}
	value, err := lookup(name)
	return value, len(name), err
}

func goModGoVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(\.\d+)?)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// dockerignoreRule is one line of a .dockerignore file.
type dockerignoreRule struct {
	pattern *regexp.Regexp
	// include marks a "!" line, which takes a path back in.
	include bool
}

type dockerignore []dockerignoreRule

// readDockerignore reads the rules with Docker's semantics: patterns are
// relative to the context root ("/" prefix optional), "*" and "?" stay
// within a path element, "**" spans any number of them, a pattern that
// matches a directory matches everything in it, and the last matching
// line wins.
func readDockerignore(t *testing.T, path string) dockerignore {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rules dockerignore
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		pattern := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(line, "!")))
		pattern = strings.TrimPrefix(pattern, "/")
		rules = append(rules, dockerignoreRule{pattern: dockerignorePattern(pattern), include: include})
	}
	return rules
}

func dockerignorePattern(p string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			re.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			re.WriteString(".*")
			i++
		case p[i] == '*':
			re.WriteString("[^/]*")
		case p[i] == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String())
}

// excludes reports whether the slash-separated path is left out of the
// context.
func (rules dockerignore) excludes(path string) bool {
	excluded := false
	for _, r := range rules {
		if r.matchesOrParent(path) {
			excluded = !r.include
		}
	}
	return excluded
}

func (r dockerignoreRule) matchesOrParent(path string) bool {
	for p := path; p != "." && p != "/"; p = filepath.ToSlash(filepath.Dir(p)) {
		if r.pattern.MatchString(p) {
			return true
		}
	}
	return false
}

// dockerContext copies the files .dockerignore lets into the build context
// to a temporary directory, which then stands for the builder's /src.
func dockerContext(t *testing.T) string {
	t.Helper()
	rules := readDockerignore(t, ".dockerignore")
	dst := t.TempDir()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == "." {
			return err
		}
		rel := filepath.ToSlash(path)
		if rules.excludes(rel) {
			if d.IsDir() && !rules.hasIncludes() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, path), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyContextFile(path, filepath.Join(dst, path))
	})
	if err != nil {
		t.Fatalf("copy build context: %v", err)
	}
	return dst
}

func (rules dockerignore) hasIncludes() bool {
	for _, r := range rules {
		if r.include {
			return true
		}
	}
	return false
}

func copyContextFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
