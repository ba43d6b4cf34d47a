package daemon

import (
	"bufio"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden scrapes in testdata/")

// TestGoldenScrape scrapes /metrics of a whole daemon in demo mode, with
// the simulated Partner Center's clock fixed at an instant of the
// scenario, and compares the exposition with testdata/e2e-output-<at>.txt
// byte for byte: a change of any name, label, help text, type or value
// fails it. Run `go test ./daemon/ -update` after an intended change and
// review the diff.
//
// The instants: at +1m the batches are in every state (queued,
// processing, finished, finished with errors, stuck, 404); at +10m every
// batch that can finish has, with all its error codes.
func TestGoldenScrape(t *testing.T) {
	for _, at := range []time.Duration{time.Minute, 10 * time.Minute} {
		t.Run(at.String(), func(t *testing.T) {
			// The scenario starts at demoEpoch, when New starts the demo;
			// the scrape comes at demoEpoch+at.
			clock := testkit.NewClock(demoEpoch)
			opts := testOptions()
			opts.Demo, opts.demoClock = true, clock.Now
			d, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			clock.Set(demoEpoch.Add(at))
			t.Cleanup(func() {
				if err := d.Close(); err != nil {
					t.Error(err)
				}
			})
			web := httptest.NewServer(d.Handler())
			t.Cleanup(web.Close)
			body := testkit.Get(t, web.URL+"/metrics", http.StatusOK)
			checkLint(t, body)
			checkGolden(t, "e2e-output-"+at.String()+".txt", goldenNormalize(t, body))
		})
	}
}

// checkGolden compares got with testdata/name exactly; with -update it
// writes got there first.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./daemon/ -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("the scrape differs from %s (run with -update after an intended change and review the diff); got:\n%s", path, got)
	}
}

// goldenWallClock are the families whose values the exporter takes from
// its own clock (time.Now in collector and daemon), which the demo's
// clock does not drive, or which time the work itself. Their HELP, TYPE,
// names and labels are compared like every other line; only their
// values read "<wall-clock>". The daemon's registry carries no go_* or
// process_* collectors (main adds those), so there are none to filter.
var goldenWallClock = map[string]bool{
	"partnercenter_api_last_success_timestamp_seconds":           true,
	"partnercenter_batch_last_success_timestamp_seconds":         true,
	"partnercenter_config_last_reload_success_timestamp_seconds": true,
	"partnercenter_scrape_duration_seconds":                      true,
	// The request latency histogram: its buckets and sum time the fake's
	// answers; its _count (how many requests) is exact and kept.
	"partnercenter_api_request_duration_seconds_bucket": true,
	"partnercenter_api_request_duration_seconds_sum":    true,
}

// goldenNormalize replaces the values of the wall-clock series (see
// goldenWallClock) with "<wall-clock>". partnercenter_batch_duration_seconds
// is "now minus started" for a batch that has not completed, so its value
// is masked for those series alone: the ones without a
// partnercenter_batch_completed_timestamp_seconds of the same labels.
// The values of the families in alsoMasked are masked too.
func goldenNormalize(t *testing.T, exposition string, alsoMasked ...string) string {
	t.Helper()
	completed := map[string]bool{}
	for line := range strings.Lines(exposition) {
		if rest, ok := strings.CutPrefix(line, "partnercenter_batch_completed_timestamp_seconds{"); ok {
			labels, _, _ := strings.Cut(rest, "}")
			completed[labels] = true
		}
	}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") && line != "" {
			series, _, ok := strings.Cut(line, " ")
			if !ok {
				t.Fatalf("sample line without a value: %q", line)
			}
			name, labels, _ := strings.Cut(series, "{")
			labels = strings.TrimSuffix(labels, "}")
			if goldenWallClock[name] || slices.Contains(alsoMasked, name) || (name == "partnercenter_batch_duration_seconds" && !completed[labels]) {
				line = series + " <wall-clock>"
			}
		}
		out.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
