package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

const upHelp = "# HELP partnercenter_up 1 when Partner Center is usable with the configured credentials. 0 while reads fail for want of a token; or while reads fail with no answer, a timeout, 401 or 5xx and either a canary read of a finished batch fails too or nothing has answered for max(5m, 2 x refresh_interval).\n# TYPE partnercenter_up gauge\n"

// expectUp checks partnercenter_up of one scrape of targets.
func (h *harness) expectUp(t *testing.T, want int) {
	t.Helper()
	expected := upHelp + fmt.Sprintf("partnercenter_up %d\n", want)
	if err := testutil.CollectAndCompare(h.scrape(context.Background()), strings.NewReader(expected), "partnercenter_up"); err != nil {
		t.Error(err)
	}
}

func TestUpJudgesWhatReadsSaid(t *testing.T) {
	tokenRefused := &partnercenter.NoTokenError{Err: &partnercenter.TokenError{StatusCode: 401, Code: "invalid_client"}}
	tests := []struct {
		name string
		// answers are what the batches answer, in order: batch2, batch3.
		answers []error
		// sinceAnswer is how long after the first round of reads the
		// second one runs; the first round's answers have aged by then.
		sinceAnswer time.Duration
		want        int
	}{
		{name: "everything read", answers: []error{nil, nil}, want: 1},
		{name: "token refused", answers: []error{tokenRefused, tokenRefused}, want: 0},
		{name: "credential file unreadable, with a recent answer", answers: []error{&partnercenter.NoTokenError{Err: errors.New("open client.pem: no such file or directory")}, nil}, sinceAnswer: time.Minute, want: 0},
		{name: "every read 5xx, nothing ever answered", answers: []error{&partnercenter.Error{StatusCode: 503}, &partnercenter.Error{StatusCode: 500}}, want: 0},
		{name: "timeouts and 401", answers: []error{&partnercenter.Error{Err: context.DeadlineExceeded}, &partnercenter.Error{StatusCode: 401}}, want: 0},
		{name: "one 5xx beside a good read", answers: []error{&partnercenter.Error{StatusCode: 503}, nil}, want: 1},
		{name: "404 only", answers: []error{&partnercenter.Error{StatusCode: 404}, &partnercenter.Error{StatusCode: 404}}, want: 1},
		{name: "403 and 5xx: the 403 is an answer", answers: []error{&partnercenter.Error{StatusCode: 403}, &partnercenter.Error{StatusCode: 502}}, want: 1},
		{name: "undecodable body", answers: []error{&partnercenter.Error{StatusCode: 200, Err: errors.New("bad body")}, nil}, want: 1},
		{name: "held by the exporter", answers: []error{&partnercenter.HoldError{Until: t0}, &partnercenter.HoldError{Until: t0}}, want: 1},
		{name: "5xx within the window of an older answer", answers: []error{&partnercenter.Error{StatusCode: 503}, &partnercenter.Error{StatusCode: 503}}, sinceAnswer: 4 * time.Minute, want: 1},
		{name: "5xx past the window of an older answer", answers: []error{&partnercenter.Error{StatusCode: 503}, &partnercenter.Error{StatusCode: 503}}, sinceAnswer: 6 * time.Minute, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2, batch3}}))
			if tt.sinceAnswer > 0 {
				// A first round answers; the batches fail from then on.
				h.src.SetBatch(custA, batch2, processing())
				h.src.SetBatch(custA, batch3, processing())
				h.read(context.Background())
				h.clock.Advance(tt.sinceAnswer)
			}
			for i, b := range []string{batch2, batch3} {
				if err := tt.answers[i]; err != nil {
					h.src.SetErr(custA, b, err)
				} else {
					h.src.SetBatch(custA, b, processing())
				}
			}
			h.expectUp(t, tt.want)
		})
	}
}

func TestSuccessOfAnyBatchCounts(t *testing.T) {
	// One finished batch read fine and one answering 500 in the same
	// scrape: Partner Center answered, so it is up.
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetErr(custA, batch2, &partnercenter.Error{StatusCode: 500})
	h.expectUp(t, 1)
}

func TestCanaryTellsABatchFaultFromAnOutage(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetErr(custA, batch2, &partnercenter.Error{StatusCode: 500})
	h.expectUp(t, 1)

	// A refresh interval later the answer is getting old and batch2 still
	// fails: one canary read of the finished batch1 answers, so up stays.
	h.clock.Advance(time.Minute)
	h.expectUp(t, 1)
	if got := h.src.Count(custA, batch1); got != 2 {
		t.Fatalf("batch1 read %d times, want 2 (the first read and one canary)", got)
	}
	// Within the refresh interval no second canary is read.
	h.clock.Advance(30 * time.Second)
	h.expectUp(t, 1)
	if got := h.src.Count(custA, batch1); got != 2 {
		t.Fatalf("batch1 read %d times within one refresh interval, want 2", got)
	}

	// An outage: the canary fails too, and up drops at once.
	h.src.SetErr(custA, batch1, &partnercenter.Error{StatusCode: 503})
	h.clock.Advance(30 * time.Second)
	h.expectUp(t, 0)
	if got := h.src.Count(custA, batch1); got != 3 {
		t.Fatalf("batch1 read %d times, want 3", got)
	}
	// The canary changes nothing the finished batch shows.
	if s, _ := h.store.Get(batchstate.Target{CustomerID: custA, TrackingID: batch1}); !s.Settled() {
		t.Errorf("a failed canary unsettled its batch: %+v", s)
	}
	// Still no answer: down, with no canary until a refresh interval passed.
	h.clock.Advance(30 * time.Second)
	h.expectUp(t, 0)
	if got := h.src.Count(custA, batch1); got != 3 {
		t.Fatalf("batch1 read %d times, want 3", got)
	}
	// The outage ends: the next canary answers and up comes back.
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.clock.Advance(30 * time.Second)
	h.expectUp(t, 1)
	if got := h.src.Count(custA, batch1); got != 4 {
		t.Fatalf("batch1 read %d times, want 4", got)
	}
	// No canary is read while nothing fails.
	h.src.SetBatch(custA, batch2, processing())
	h.clock.Advance(time.Minute)
	h.expectUp(t, 1)
	h.clock.Advance(5 * time.Minute)
	h.expectUp(t, 1)
	if got := h.src.Count(custA, batch1); got != 4 {
		t.Errorf("batch1 read %d times with nothing failing, want 4", got)
	}
}

func TestTokenFailureCountsOnlyWhileAReadNeedsAToken(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetErr(custA, batch2, &partnercenter.NoTokenError{Err: &partnercenter.TokenError{StatusCode: 401, Code: "invalid_client"}})
	h.expectUp(t, 0)
	// The batch that needed a token is removed: everything left is served
	// from memory, and nothing says the API is down.
	h.cfg = testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1}})
	h.store.SetMembers(targetsOf(h.cfg), h.clock.Now())
	h.clock.Advance(10 * time.Minute)
	h.expectUp(t, 1)
	if got := h.src.TotalCalls(); got != 2 {
		t.Errorf("%d reads, want 2", got)
	}
}

func TestProbeShowsNoAPIHealth(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.SetErr(custA, batch2, &partnercenter.Error{StatusCode: 500})
	probe := NewProbe(context.Background(), policyOf(h.cfg), targetsOf(h.cfg), h.src, h.reader)
	for _, name := range []string{"partnercenter_up", "partnercenter_api_last_success_timestamp_seconds", "partnercenter_api_throttled_until_timestamp_seconds"} {
		if got := testutil.CollectAndCount(probe, name); got != 0 {
			t.Errorf("/probe emits %s (%d series): one batch's failure would speak for the exporter", name, got)
		}
	}
	if got := testutil.CollectAndCount(probe, "partnercenter_batch_scrape_success"); got != 1 {
		t.Errorf("partnercenter_batch_scrape_success series = %d, want 1", got)
	}
}

func TestExporterHealthReadsNoBatch(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.SetBatch(custA, batch2, processing())
	h.read(context.Background())
	h.src.Hold(t0.Add(time.Minute))
	view := NewExporterHealth(context.Background(), policyOf(h.cfg), targetsOf(h.cfg), h.src, h.reader)
	expected := `# HELP partnercenter_api_last_success_timestamp_seconds When a batch was last read successfully from Partner Center (answered and decoded), as a Unix timestamp; 0 before the first.
# TYPE partnercenter_api_last_success_timestamp_seconds gauge
partnercenter_api_last_success_timestamp_seconds ` + fmt.Sprint(float64(t0.Unix())) + `
# HELP partnercenter_api_throttled_until_timestamp_seconds When the exporter's hold on API requests after an HTTP 429 ends, as a Unix timestamp; 0 when none is in force.
# TYPE partnercenter_api_throttled_until_timestamp_seconds gauge
partnercenter_api_throttled_until_timestamp_seconds ` + fmt.Sprint(float64(t0.Unix()+60)) + `
` + upHelp + `partnercenter_up 1
`
	if err := testutil.CollectAndCompare(view, strings.NewReader(expected)); err != nil {
		t.Fatal(err)
	}
	if got := h.src.TotalCalls(); got != 1 {
		t.Errorf("the exporter view read batches: %d reads, want 1", got)
	}
}
