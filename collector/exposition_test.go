package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// acceptHeaders are what scrapers send: Prometheus' default and
// protobuf-first headers, each exposition format alone, and none.
var acceptHeaders = []string{
	"",
	"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
	"text/plain;version=0.0.4",
	"text/plain;version=1.0.0;escaping=underscores",
	"application/openmetrics-text;version=1.0.0",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
}

var acceptEncodings = []string{"", "gzip", "gzip, deflate, br", "identity", "gzip;q=0.5, identity;q=0.8", "*"}

// mixedHarness holds settled batches (some sharing tracking IDs across
// customers, one with more than 20 error codes, one with an invalid UTF-8
// code, one never started), running ones, failing ones and retired ones,
// all read once.
func mixedHarness(t testing.TB, settled int) *harness {
	t.Helper()
	var a, b []string
	for i := range settled {
		a = append(a, fmt.Sprintf("%08x-0000-4000-8000-%012d", i*7919%1000003, i))
		if i%3 == 0 {
			b = append(b, a[i])
		}
	}
	running := []string{"running0-0000-4000-8000-000000000000", "00000000-0000-4000-8000-running00001"}
	failing := []string{"failing0-0000-4000-8000-000000000000", "zzzzzzzz-0000-4000-8000-failing00001"}
	retired := []string{"retired0-0000-4000-8000-000000000000"}
	cfg := testConfig(time.Minute,
		config.Customer{ID: custA, Name: "Contoso", Batches: append(append(append(append([]string{}, a...), running...), failing...), retired...)},
		config.Customer{ID: custB, Name: "Fabrikam", Batches: b},
	)
	cfg.Retention = 7 * 24 * time.Hour
	h := newHarness(cfg)
	for i, id := range a {
		fb := finishedWithErrors()
		fb.TrackingID = id
		fb.Devices[partnercenter.StatusFinished] = i
		switch i {
		case 1:
			for c := range 25 {
				fb.Errors = append(fb.Errors, partnercenter.ErrorCount{Code: fmt.Sprint(900 + c), Description: "Many \"quoted\"\nlines\\", Devices: c + 1})
			}
		case 2:
			fb.Errors = append(fb.Errors, partnercenter.ErrorCount{Code: "bad\xffcode", Description: "bad\xfe", Devices: 3},
				partnercenter.ErrorCount{Code: "other", Description: "the service's own", Devices: 4})
			fb.OtherErrorDevices = 2
		case 3:
			fb.StartedTime, fb.CompletedTime = time.Time{}, time.Time{}
		}
		h.src.SetBatch(custA, id, fb)
	}
	for _, id := range b {
		fb := finishedWithErrors()
		fb.TrackingID = id
		fb.Status, fb.RawStatus = partnercenter.StatusFinished, "finished"
		h.src.SetBatch(custB, id, fb)
	}
	for _, id := range running {
		h.src.SetBatch(custA, id, processing())
	}
	for _, id := range failing {
		h.src.SetErr(custA, id, &partnercenter.Error{StatusCode: 404, Code: "600", Description: "The batch was not found."})
	}
	for _, id := range retired {
		fb := finishedWithErrors()
		fb.CompletedTime = t0.Add(-30 * 24 * time.Hour)
		h.src.SetBatch(custA, id, fb)
	}
	h.read(context.Background())
	return h
}

// selfRegistry stands for the exporter's own metrics: fixed values, so
// that two scrapes can be compared.
func selfRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "partnercenter_api_requests_total", Help: "Requests."}, []string{"code"})
	c.WithLabelValues("200").Add(3)
	reg.MustRegister(c, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aaa_first", Help: "Sorts first."}, func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zzz_last", Help: "Sorts last."}, func() float64 { return 2 }))
	return reg
}

// response is what a scrape answered, decompressed.
type response struct {
	contentType, contentEncoding string
	vary                         []string
	body                         string
}

func get(t testing.TB, h http.Handler, accept, acceptEncoding, query string) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics"+query, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	body := rec.Body.Bytes()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return response{rec.Header().Get("Content-Type"), rec.Header().Get("Content-Encoding"), rec.Header().Values("Vary"), string(body)}
}

// registryHandler serves a scrape the way the exporter did before Serve:
// the collector on a registry of its own, gathered with self.
func registryHandler(h *harness, self prometheus.Gatherer, view View, openMetrics bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(h.viewScrape(view))
		var g prometheus.Gatherer = reg
		if self != nil {
			g = prometheus.Gatherers{reg, self}
		}
		promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: openMetrics}).ServeHTTP(w, r)
	})
}

func serveHandler(h *harness, self prometheus.Gatherer, view View, openMetrics bool) http.Handler {
	accepted := expfmt.DefaultAcceptedFormats()
	if openMetrics {
		accepted = expfmt.DefaultOpenMetricsAcceptedFormats()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, h.viewScrape(view), self, nil, accepted)
	})
}

func (h *harness) viewScrape(view View) *Scrape {
	s := h.scrape(context.Background())
	switch view {
	case ViewBatches:
		s = NewProbe(context.Background(), policyOf(h.cfg), targetsOf(h.cfg), h.src, h.reader)
	case ViewExporter:
		s = NewExporterHealth(context.Background(), policyOf(h.cfg), targetsOf(h.cfg), h.src, h.reader)
	}
	s.now = h.clock.Now
	return s
}

// assertSameExposition scrapes through the registry and through Serve
// (twice: building the cache, then from it) in every format and
// compression, and fails on any difference.
func assertSameExposition(t *testing.T, h *harness, self prometheus.Gatherer, view View) {
	t.Helper()
	for _, om := range []bool{false, true} {
		want, got := registryHandler(h, self, view, om), serveHandler(h, self, view, om)
		for _, accept := range acceptHeaders {
			for _, ae := range acceptEncodings {
				w := get(t, want, accept, ae, "")
				for round := range 2 {
					g := get(t, got, accept, ae, "")
					if g.contentType != w.contentType || g.contentEncoding != w.contentEncoding || fmt.Sprint(g.vary) != fmt.Sprint(w.vary) {
						t.Fatalf("openmetrics=%v accept %q, encoding %q, round %d: headers %+v, want %+v", om, accept, ae, round,
							[]any{g.contentType, g.contentEncoding, g.vary}, []any{w.contentType, w.contentEncoding, w.vary})
					}
					if g.body != w.body {
						t.Fatalf("openmetrics=%v accept %q, encoding %q, round %d: exposition differs:\n%s", om, accept, ae, round, firstDifference(g.body, w.body))
					}
				}
			}
		}
	}
}

func firstDifference(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(i-200, 0)
	return fmt.Sprintf("at byte %d\ngot:  %q\nwant: %q", i, got[from:min(i+200, len(got))], want[from:min(i+200, len(want))])
}

func TestServeIsTheRegistryExposition(t *testing.T) {
	h := mixedHarness(t, 60)
	self := selfRegistry()
	for _, view := range []View{ViewAll, ViewBatches, ViewExporter} {
		t.Run(fmt.Sprint("view=", view), func(t *testing.T) {
			var g prometheus.Gatherer = self
			if view == ViewBatches {
				g = nil
			}
			assertSameExposition(t, h, g, view)
		})
	}
	t.Run("name filter", func(t *testing.T) {
		for _, q := range []string{"?name[]=partnercenter_batch_devices&name[]=partnercenter_up", "?name[]=zzz_last"} {
			w := get(t, registryHandler(h, self, ViewAll, false), "", "", q)
			g := get(t, serveHandler(h, self, ViewAll, false), "", "", q)
			if g.body != w.body {
				t.Fatalf("%s: %s", q, firstDifference(g.body, w.body))
			}
		}
	})
}

// The cache is never served stale: after each change, Serve answers what
// the registry (which keeps nothing) answers.
func TestServeFollowsChangesOfSettledBatches(t *testing.T) {
	h := mixedHarness(t, 20)
	self := selfRegistry()
	assertSameExposition(t, h, self, ViewAll)
	ids := h.cfg.Customers[0].Batches

	t.Run("read under new settings", func(t *testing.T) {
		changed := finishedWithErrors()
		changed.TrackingID = ids[0]
		changed.Devices[partnercenter.StatusFinished] = 4242
		h.src.SetBatch(custA, ids[0], changed)
		h.src.SetStamp("cap=5")
		before := h.src.Count(custA, ids[0])
		got := get(t, serveHandler(h, self, ViewAll, false), "", "", "")
		if h.src.Count(custA, ids[0]) != before+1 {
			t.Fatal("the batch was not read again under the new settings")
		}
		if !strings.Contains(got.body, `partnercenter_batch_devices{batch_tracking_id="`+ids[0]+`",customer_id="`+custA+`",status="finished"} 4242`) {
			t.Fatal("the new read is not served")
		}
		assertSameExposition(t, h, self, ViewAll)
	})
	t.Run("retired", func(t *testing.T) {
		h.clock.Advance(8 * 24 * time.Hour)
		got := get(t, serveHandler(h, self, ViewAll, false), "", "", "")
		if strings.Contains(got.body, ids[1]) {
			t.Fatal("a retired batch is served")
		}
		assertSameExposition(t, h, self, ViewAll)
		h.clock.Advance(-8 * 24 * time.Hour)
	})
	t.Run("removed", func(t *testing.T) {
		h := mixedHarness(t, 20)
		assertSameExposition(t, h, self, ViewAll)
		ids := h.cfg.Customers[0].Batches
		// ids[1] is custA's alone (custB lists every third).
		h.cfg.Customers[0].Batches = append(ids[:1:1], ids[2:]...)
		h.store.SetMembers(targetsOf(h.cfg), t0)
		got := get(t, serveHandler(h, self, ViewAll, false), "", "", "")
		if strings.Contains(got.body, ids[1]) {
			t.Fatal("a removed batch is served")
		}
		assertSameExposition(t, h, self, ViewAll)
		// A probe naming it is not served it either: it is no member.
		probe := NewProbe(context.Background(), policyOf(h.cfg), []batchstate.Target{{CustomerID: custA, TrackingID: ids[1]}}, h.src, h.reader)
		rec := httptest.NewRecorder()
		Serve(rec, httptest.NewRequest(http.MethodGet, "/probe", nil), probe, nil, nil)
		if strings.Contains(rec.Body.String(), "partnercenter_batch_devices") {
			t.Fatalf("a removed batch is served by a probe:\n%s", rec.Body)
		}
	})
	t.Run("restored", func(t *testing.T) {
		h := mixedHarness(t, 20)
		assertSameExposition(t, h, self, ViewAll)
		id := h.cfg.Customers[0].Batches[5]
		target := batchstate.Target{CustomerID: custA, TrackingID: id}
		s, _ := h.store.Get(target)
		changed := *s.Batch
		changed.Devices[partnercenter.StatusFinished] = 777
		// Same pointer kept in the store means same series; a new state is
		// a new pointer, as every write to the store makes one.
		h.store.Record(target, "", t0, t0.Add(time.Second), &changed, nil)
		got := get(t, serveHandler(h, self, ViewAll, false), "", "", "")
		if !strings.Contains(got.body, `customer_id="`+custA+`",status="finished"} 777`) {
			t.Fatal("the recorded read is not served")
		}
		assertSameExposition(t, h, self, ViewAll)
	})
}

func TestServeIsLintClean(t *testing.T) {
	h := mixedHarness(t, 30)
	got := get(t, serveHandler(h, nil, ViewAll, false), "text/plain;version=0.0.4", "", "")
	problems, err := promlint.New(strings.NewReader(got.body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// The cache forgets batches that are gone: it holds at most about twice
// the batches that are still settled members, however many come and go.
func TestExportCacheIsSwept(t *testing.T) {
	h := mixedHarness(t, 10)
	serve := serveHandler(h, nil, ViewAll, false)
	for round := range 30 {
		ids := make([]string, 200)
		for i := range ids {
			ids[i] = fmt.Sprintf("%08d-0000-4000-8000-%012d", round, i)
			fb := finishedWithErrors()
			fb.TrackingID = ids[i]
			h.src.SetBatch(custA, ids[i], fb)
		}
		h.cfg.Customers = []config.Customer{{ID: custA, Name: "Contoso", Batches: ids}}
		h.store.SetMembers(targetsOf(h.cfg), t0)
		get(t, serve, "", "", "")
	}
	h.reader.exports.mu.Lock()
	n := len(h.reader.exports.batches)
	h.reader.exports.mu.Unlock()
	if n > 2*200+sweepMargin {
		t.Fatalf("the cache holds %d batches after 30 rounds of 200", n)
	}
}

// TestServeAllocationsDoNotDependOnSeries: a scrape of settled batches
// served from the cache allocates a few times per batch (its read result
// and its place in the scrape), not once per series as building metrics
// does (about 290 allocations per batch).
func TestServeAllocationsDoNotDependOnSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 2,000 batches")
	}
	h := cachedHarness(t, 2_000)
	handler := serveHandler(h, nil, ViewAll, false)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	w := &discardResponse{header: http.Header{}}
	handler.ServeHTTP(w, req)
	allocs := testing.AllocsPerRun(5, func() {
		w.header = http.Header{}
		handler.ServeHTTP(w, req)
	})
	if perBatch := allocs / 2_000; perBatch > 20 {
		t.Fatalf("%.0f allocations per scrape, %.1f per batch; want at most 20 per batch", allocs, perBatch)
	}
	var before, after runtimeMemStats
	before.read()
	handler.ServeHTTP(w, req)
	after.read()
	if garbage := after.totalAlloc - before.totalAlloc; garbage > 2_000*2<<10 {
		t.Fatalf("a scrape allocated %d bytes; want at most 2 KiB per batch", garbage)
	}
}

// discardResponse is a ResponseWriter that keeps nothing.
type discardResponse struct {
	header http.Header
	n      int64
}

func (d *discardResponse) Header() http.Header { return d.header }
func (d *discardResponse) WriteHeader(int)     {}
func (d *discardResponse) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}

type runtimeMemStats struct{ totalAlloc uint64 }

func (m *runtimeMemStats) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.totalAlloc = s.TotalAlloc
}

// TestExportCacheMemory: what the cache keeps of a settled batch is about
// its exposition in the format asked for (2.8 KB here), not the ~17
// metrics built from it.
func TestExportCacheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 5,000 batches")
	}
	const n = 5_000
	h := cachedHarness(t, n)
	handler := serveHandler(h, nil, ViewAll, false)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	w := &discardResponse{header: http.Header{}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	handler.ServeHTTP(w, req)
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	if exposition := w.n / n; kept > 2*exposition+2048 {
		t.Fatalf("the cache keeps %d B per batch for %d B of exposition", kept, exposition)
	}
	runtime.KeepAlive(h)
}
