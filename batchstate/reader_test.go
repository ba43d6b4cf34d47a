package batchstate

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/fakesource"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// waitFor polls cond for up to 5 s: reads run in goroutines of their own.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// cancelWhenStarted ends a scrape once its read has started (or after 5 s).
func cancelWhenStarted(started *atomic.Int32, cancel context.CancelFunc) {
	for deadline := time.Now().Add(5 * time.Second); started.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
}

// waitForFlight returns once no read of t is queued or running.
func waitForFlight(r *Reader, t Target) {
	r.reads.mu.Lock()
	j := r.reads.jobs[t.Key()]
	r.reads.mu.Unlock()
	if j != nil {
		<-j.done
	}
}

// blockingBatch answers with b once release is closed, counting the reads
// that started.
func blockingBatch(started *atomic.Int32, release <-chan struct{}, b *partnercenter.Batch) func(context.Context) (*partnercenter.Batch, error) {
	return func(ctx context.Context) (*partnercenter.Batch, error) {
		started.Add(1)
		select {
		case <-release:
			return b, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func TestFinishedBatchIsReadOnce(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetBatch(custA, batch2, processing())
	for range 5 {
		h.read(context.Background())
		h.clock.Advance(time.Hour)
	}
	if got := h.src.Count(custA, batch1); got != 1 {
		t.Errorf("finished batch read %d times, want 1", got)
	}
	if got := h.src.Count(custA, batch2); got != 5 {
		t.Errorf("processing batch read %d times with refresh_interval 0, want 5", got)
	}
}

func TestRefreshIntervalHoldsEveryBatch(t *testing.T) {
	// Unfinished and failing batches alike are read again only once their
	// last attempt is refresh_interval old.
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch2, batch3}}))
	h.src.SetBatch(custA, batch2, processing())
	h.src.SetErr(custA, batch3, &partnercenter.Error{StatusCode: 404, Code: "600"})
	steps := []struct {
		advance   time.Duration
		wantReads int
	}{
		{0, 1},
		{30 * time.Second, 1},
		{29 * time.Second, 1},
		{time.Second, 2},
		{59 * time.Second, 2},
		{time.Second, 3},
	}
	for i, step := range steps {
		h.clock.Advance(step.advance)
		r := h.read(context.Background())
		for _, b := range []string{batch2, batch3} {
			if got := h.src.Count(custA, b); got != step.wantReads {
				t.Errorf("step %d: batch %s read %d times, want %d", i, b[:8], got, step.wantReads)
			}
		}
		if r[0].Batch == nil || r[0].LastError != nil || r[1].LastError == nil {
			t.Errorf("step %d: processing batch %+v, failing batch error %v", i, r[0].BatchState, r[1].LastError)
		}
	}
}

func TestReadOutlivesTheScrapeThatStartedIt(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	var started atomic.Int32
	release := make(chan struct{})
	h.src.Set(custA, batch2, blockingBatch(&started, release, processing()))

	// Scrape A gives up while the slow read runs; scrape B joins the same
	// read with a longer deadline.
	ctxA, cancelA := context.WithCancel(context.Background())
	doneA := make(chan []Result)
	go func() { doneA <- h.read(ctxA) }()
	// The fast read runs beside the slow one: wait for both, so that A's
	// end cannot race the fast read's.
	waitFor(t, "the slow read to start and the fast one to end", func() bool {
		s, _ := h.store.Get(Target{CustomerID: custA, TrackingID: batch1})
		return started.Load() == 1 && s.Batch != nil
	})
	doneB := make(chan []Result)
	go func() { doneB <- h.read(context.Background()) }()
	cancelA()
	resA := <-doneA
	if resA[0].Batch == nil || resA[1].Batch != nil || resA[1].LastError != nil || !resA[1].LastAttempt.IsZero() {
		t.Errorf("scrape A: fast batch %+v; slow batch %+v, want the fast one read and the slow one untouched", resA[0].BatchState, resA[1].BatchState)
	}
	close(release)
	resB := <-doneB
	if resB[1].Batch == nil || resB[1].LastError != nil {
		t.Errorf("scrape B: slow batch %+v, want it read: A's end must not cancel B's read", resB[1].BatchState)
	}
	// The next scrape is served by that read.
	resC := h.read(context.Background())
	if got := h.src.Count(custA, batch2); got != 1 || resC[1].Batch == nil {
		t.Errorf("slow batch requested %d times (want 1), third scrape sees %+v", got, resC[1].BatchState)
	}
	if logs := h.logText(); strings.Contains(logs, "failed") || strings.Contains(logs, "deadline") {
		t.Errorf("a scrape giving up was logged as a failure:\n%s", logs)
	}
}

func TestReadStillRunningServesTheNextScrape(t *testing.T) {
	// A batch whose answer takes longer than any scrape: every scrape gives
	// up, yet the one read finishes and is stored.
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch2}}))
	var started atomic.Int32
	release := make(chan struct{})
	h.src.Set(custA, batch2, blockingBatch(&started, release, processing()))
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		r := h.read(ctx)
		cancel()
		if r[0].LastError != nil {
			t.Fatalf("a scrape that gave up stored an error: %v", r[0].LastError)
		}
	}
	close(release)
	waitFor(t, "the read to be stored", func() bool {
		s, _ := h.store.Get(Target{CustomerID: custA, TrackingID: batch2})
		return s.Batch != nil
	})
	h.read(context.Background())
	if got := started.Load(); got != 1 {
		t.Errorf("batch requested %d times over four scrapes, want 1", got)
	}
}

func TestReadIsBoundedByTheReadTimeout(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.Set(custA, batch2, func(ctx context.Context) (*partnercenter.Batch, error) {
		<-ctx.Done()
		return nil, &partnercenter.Error{Err: ctx.Err()}
	})
	r := h.reader.Read(context.Background(), h.src, targetsOf(h.cfg), ReadPolicy{Refresh: time.Minute, Timeout: 30 * time.Millisecond})
	if r[0].LastError == nil || !strings.Contains(r[0].LastError.Error(), "context deadline exceeded") {
		t.Errorf("error = %v, want the read timeout", r[0].LastError)
	}
}

func TestConcurrentScrapesShareReads(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch2}}))
	var started atomic.Int32
	release := make(chan struct{})
	h.src.Set(custA, batch2, blockingBatch(&started, release, processing()))
	var wg sync.WaitGroup
	results := make([][]Result, 3)
	for i := range results {
		wg.Go(func() { results[i] = h.read(context.Background()) })
	}
	waitFor(t, "the read to start", func() bool { return started.Load() == 1 })
	close(release)
	wg.Wait()
	if got := h.src.Count(custA, batch2); got != 1 {
		t.Errorf("three concurrent scrapes made %d reads, want 1", got)
	}
	for i, r := range results {
		if r[0].Batch == nil {
			t.Errorf("scrape %d: no batch", i)
		}
	}
}

func TestNoBatchIsReadTwicePerRefreshInterval(t *testing.T) {
	// Many scrapers, batches that finish, stay unfinished or fail, and a
	// clock that does not move: each batch is requested exactly once,
	// however the reads and cache checks interleave.
	const batches, scrapers, rounds = 200, 20, 10
	var ids []string
	for i := range batches {
		ids = append(ids, fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: ids}))
	for i, id := range ids {
		switch i % 3 {
		case 0:
			h.src.SetBatch(custA, id, finishedWithErrors())
		case 1:
			h.src.SetBatch(custA, id, processing())
		default:
			h.src.SetErr(custA, id, &partnercenter.Error{StatusCode: 404, Code: "600"})
		}
	}
	var wg sync.WaitGroup
	for range scrapers {
		wg.Go(func() {
			for range rounds {
				h.read(context.Background())
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if got := h.src.Count(custA, id); got != 1 {
			t.Errorf("batch %s requested %d times, want 1", id, got)
		}
	}
}

func TestWaitingForARequestSlotIsNotAnError(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.reader.SetMaxConcurrent(1)
	var started atomic.Int32
	release := make(chan struct{})
	h.src.Set(custA, batch1, blockingBatch(&started, release, finishedWithErrors()))
	h.src.SetBatch(custA, batch2, processing())
	// batch1's read takes the only slot ...
	first, cancelFirst := context.WithCancel(context.Background())
	go cancelWhenStarted(&started, cancelFirst)
	h.reader.Read(first, h.src, targetsOf(h.cfg)[:1], h.policy())
	// ... so batch2 waits for it until this scrape's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	r := h.read(ctx)
	if r[1].LastError != nil || !r[1].LastAttempt.IsZero() || h.src.Count(custA, batch2) != 0 {
		t.Errorf("batch queued behind the slot: %+v, %d requests; want nothing sent or recorded", r[1].BatchState, h.src.Count(custA, batch2))
	}
	close(release)
	waitFor(t, "the queued read", func() bool { return h.src.Count(custA, batch2) == 1 })
}

func TestConcurrencyIsBounded(t *testing.T) {
	const limit = 3
	var batches []string
	for i := range 12 {
		batches = append(batches, fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: batches}))
	h.reader.SetMaxConcurrent(limit)
	var running, peak atomic.Int32
	full := make(chan struct{})
	var fullOnce sync.Once
	for _, b := range batches {
		h.src.Set(custA, b, func(context.Context) (*partnercenter.Batch, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n == limit {
				fullOnce.Do(func() { close(full) })
			}
			// Hold the slot until the limit was reached once, so that the
			// peak does not depend on scheduling; a bound that lets more
			// through still shows up as a higher peak.
			select {
			case <-full:
			case <-time.After(5 * time.Second):
			}
			running.Add(-1)
			return processing(), nil
		})
	}
	h.read(context.Background())
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrent reads = %d, want %d", got, limit)
	}
	if got := h.src.TotalCalls(); got != len(batches) {
		t.Errorf("reads = %d, want %d", got, len(batches))
	}
}

func TestReadFinishingAfterARemovalDoesNotBringTheBatchBack(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	var started atomic.Int32
	release := make(chan struct{})
	h.src.Set(custA, batch2, blockingBatch(&started, release, processing()))
	ctx, cancel := context.WithCancel(context.Background())
	go cancelWhenStarted(&started, cancel)
	h.read(ctx) // the old configuration's scrape
	h.store.SetMembers([]Target{{CustomerID: custA, TrackingID: batch1}}, h.clock.Now())
	close(release)
	// The removed batch's read ends; nothing may store it.
	waitForFlight(h.reader, Target{CustomerID: custA, TrackingID: batch2})
	if s, ok := h.store.Get(Target{CustomerID: custA, TrackingID: batch2}); ok {
		t.Errorf("removed batch is back in the store: %+v", s)
	}
	if logs := h.logText(); logs != "" {
		t.Errorf("removed batch's read was logged:\n%s", logs)
	}
}

// A read is stored with the stamp of the source that made it; a stored
// read with another stamp than the current source's is read again.
func TestReadUnderOtherSettingsIsReadAgain(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1}}))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetStamp("before")
	h.read(context.Background())
	h.read(context.Background())
	if got := h.src.Count(custA, batch1); got != 1 {
		t.Fatalf("finished batch requested %d times, want 1", got)
	}
	h.src.SetStamp("after")
	h.read(context.Background())
	h.read(context.Background())
	if got := h.src.Count(custA, batch1); got != 2 {
		t.Errorf("finished batch requested %d times across a change of settings, want 2", got)
	}
	if s, _ := h.store.Get(Target{CustomerID: custA, TrackingID: batch1}); s.Stamp != "after" {
		t.Errorf("stored stamp %q, want %q", s.Stamp, "after")
	}
}

// A read that waited for a request slot while the settings changed is
// stored as read under the old settings, and so read again under the new.
func TestReadQueuedThroughAChangeOfSettingsIsReadAgain(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.reader.SetMaxConcurrent(1)
	var started atomic.Int32
	release := make(chan struct{})
	h.src.Set(custA, batch1, blockingBatch(&started, release, processing()))
	h.src.SetBatch(custA, batch2, finishedWithErrors())
	h.src.SetStamp("old")
	ctx, cancel := context.WithCancel(context.Background())
	go cancelWhenStarted(&started, cancel)
	h.read(ctx) // batch1 holds the one slot, batch2 waits for it

	newSrc := fakesource.New()
	newSrc.SetStamp("new")
	newSrc.SetBatch(custA, batch1, processing())
	newSrc.SetBatch(custA, batch2, finishedWithErrors())
	close(release)
	waitForFlight(h.reader, Target{CustomerID: custA, TrackingID: batch2})
	if got := h.src.Count(custA, batch2); got != 1 {
		t.Fatalf("queued read: %d requests through the old source, want 1", got)
	}
	if s, _ := h.store.Get(Target{CustomerID: custA, TrackingID: batch2}); s.Stamp != "old" {
		t.Errorf("queued read stored with stamp %q, want %q", s.Stamp, "old")
	}
	h.reader.Read(context.Background(), newSrc, targetsOf(h.cfg), h.policy())
	if got := newSrc.Count(custA, batch2); got != 1 {
		t.Errorf("finished batch read %d times under the new settings, want 1", got)
	}
}

// Concurrent scrapes retire a batch, and log it, once.
func TestConcurrentScrapesRetireOnce(t *testing.T) {
	cfg := testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1}})
	h := newHarness(cfg)
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.read(context.Background())
	p := h.policy()
	p.Retention = time.Hour // batch1 completed 90 minutes ago
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { h.reader.Read(context.Background(), h.src, targetsOf(cfg), p) })
	}
	wg.Wait()
	if got := strings.Count(h.logText(), "batch retired"); got != 1 {
		t.Errorf("retirement logged %d times, want 1:\n%s", got, h.logText())
	}
}

func TestFailureIsLoggedOnceAndRecoveryToo(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.SetBatch(custA, batch2, processing())
	h.read(context.Background())
	h.src.SetErr(custA, batch2, &partnercenter.Error{
		StatusCode: 500, Code: "500", Description: "boom",
		RequestID: "req-1", CorrelationID: "corr-1",
	})
	for range 3 {
		h.read(context.Background())
	}
	h.src.SetErr(custA, batch2, &partnercenter.Error{StatusCode: 404, Code: "600", Description: "gone"})
	h.read(context.Background())
	h.src.SetBatch(custA, batch2, processing())
	h.read(context.Background())
	h.read(context.Background())
	want := strings.Join([]string{
		`level=warn customer_id=aaaaaaaa-0000-4000-8000-000000000001 batch_tracking_id=22222222-2222-4222-8222-222222222222 msg="reading batch failed" err="HTTP 500, error code 500: boom" http_status=500 error_code=500 request_id=req-1 correlation_id=corr-1`,
		`level=warn customer_id=aaaaaaaa-0000-4000-8000-000000000001 batch_tracking_id=22222222-2222-4222-8222-222222222222 msg="reading batch failed" err="HTTP 404, error code 600: gone" http_status=404 error_code=600 request_id= correlation_id=`,
		`level=info customer_id=aaaaaaaa-0000-4000-8000-000000000001 batch_tracking_id=22222222-2222-4222-8222-222222222222 msg="batch read again successfully after failures"`,
		``,
	}, "\n")
	if got := h.logText(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

func TestHoldIsLoggedAsTheExportersOwn(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	hold := &partnercenter.HoldError{Until: t0.Add(5 * time.Minute)}
	h.src.SetErr(custA, batch2, hold)
	h.read(context.Background())
	h.read(context.Background())
	want := `level=warn customer_id=aaaaaaaa-0000-4000-8000-000000000001 batch_tracking_id=22222222-2222-4222-8222-222222222222 msg="batch not read" err="` + hold.Error() + "\"\n"
	if got := h.logText(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

func TestUnknownStatusLoggedOncePerValue(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	b := processing()
	b.Status, b.RawStatus = partnercenter.StatusUnknown, "Paused"
	b.UnknownDeviceStatuses = []string{"Held"}
	h.src.SetBatch(custA, batch2, b)
	for range 3 {
		h.read(context.Background())
	}
	b2 := *b
	b2.UnknownDeviceStatuses = []string{"Held", "Parked"}
	h.src.SetBatch(custA, batch2, &b2)
	h.read(context.Background())
	logs := h.logText()
	for _, v := range []string{"value=Paused", "value=Held", "value=Parked"} {
		if got := strings.Count(logs, v); got != 1 {
			t.Errorf("%s logged %d times, want 1:\n%s", v, got, logs)
		}
	}
}

func TestLastSuccessFollowsSuccessfulReadsOnly(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.SetErr(custA, batch2, &partnercenter.Error{StatusCode: 200, Err: fmt.Errorf("decode batch: unexpected EOF")})
	h.read(context.Background())
	if got := h.reader.LastSuccess(); !got.IsZero() {
		t.Errorf("LastSuccess after an undecodable 200 = %v, want zero", got)
	}
	h.src.SetBatch(custA, batch2, processing())
	h.clock.Advance(time.Minute)
	h.read(context.Background())
	if got := h.reader.LastSuccess(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("LastSuccess = %v, want %v", got, t0.Add(time.Minute))
	}
}

func TestRaisingMaxConcurrentStartsWaitingReads(t *testing.T) {
	// A reload raising max_concurrent_requests applies to the reads
	// already waiting, not only to those queued after it.
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2, batch3}}))
	h.reader.SetMaxConcurrent(1)
	var started atomic.Int32
	release := make(chan struct{})
	for _, b := range []string{batch1, batch2, batch3} {
		h.src.Set(custA, b, blockingBatch(&started, release, processing()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.read(ctx)
	waitFor(t, "the first read to start", func() bool { return started.Load() == 1 })
	h.reader.SetMaxConcurrent(3)
	waitFor(t, "the waiting reads to start", func() bool { return started.Load() == 3 })
	close(release)
	for _, b := range []string{batch1, batch2, batch3} {
		waitForFlight(h.reader, Target{CustomerID: custA, TrackingID: b})
		if got := h.src.Count(custA, b); got != 1 {
			t.Errorf("batch %s read %d times, want 1", b[:8], got)
		}
	}
}
