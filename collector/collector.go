// Package collector turns what Partner Center says about the configured
// batches into Prometheus metrics.
package collector

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

const namespace = "partnercenter"

// maxErrorCodesPerBatch bounds the error_code label values of one batch;
// the devices of further codes are summed under otherErrorCode.
const (
	maxErrorCodesPerBatch = 20
	otherErrorCode        = "other"
)

var (
	batchLabels = []string{"customer_id", "batch_tracking_id"}

	batchStatusFamily = newBatchFamily("status",
		"Status of the batch: 1 for the current status, 0 for the others.", "status")
	batchStatusDesc    = batchStatusFamily.desc
	batchDevicesFamily = newBatchFamily("devices",
		"Number of devices in the batch per device status.", "status")
	batchDevicesDesc        = batchDevicesFamily.desc
	batchDeviceErrorsFamily = newBatchFamily("device_errors",
		"Number of devices in the batch that reported an error code (at most "+strconv.Itoa(maxErrorCodesPerBatch)+" codes per batch, the rest under error_code=\""+otherErrorCode+"\").",
		"error_code", "error_description")
	batchDeviceErrorsDesc = batchDeviceErrorsFamily.desc
	batchStartedFamily    = newBatchFamily("started_timestamp_seconds",
		"When processing of the batch started, as a Unix timestamp; absent while unset.")
	batchStartedDesc     = batchStartedFamily.desc
	batchCompletedFamily = newBatchFamily("completed_timestamp_seconds",
		"When processing of the batch completed, as a Unix timestamp; absent while unset.")
	batchCompletedDesc  = batchCompletedFamily.desc
	batchDurationFamily = newBatchFamily("duration_seconds",
		"Processing time of the batch: completed minus started, or now minus started while it runs.")
	batchDurationDesc      = batchDurationFamily.desc
	batchLastSuccessFamily = newBatchFamily("last_success_timestamp_seconds",
		"When the values shown for the batch were read from Partner Center, as a Unix timestamp.")
	batchLastSuccessDesc     = batchLastSuccessFamily.desc
	batchScrapeSuccessFamily = newBatchFamily("scrape_success",
		"1 when the last read of the batch succeeded, 0 when it failed or no read has finished yet.")
	batchScrapeSuccessDesc = batchScrapeSuccessFamily.desc
	customerInfoDesc       = prometheus.NewDesc(prometheus.BuildFQName(namespace, "customer", "info"),
		"Configured customer, with its name.",
		[]string{"customer_id", "customer_name"}, nil)
	upDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "up"),
		"1 when Partner Center is usable with the configured credentials. 0 while reads fail for want of a token; or while reads fail with no answer, a timeout, 401 or 5xx and either a canary read of a finished batch fails too or nothing has answered for max(5m, 2 x refresh_interval).",
		nil, nil)
	apiLastSuccessDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "last_success_timestamp_seconds"),
		"When a batch was last read successfully from Partner Center (answered and decoded), as a Unix timestamp; 0 before the first.",
		nil, nil)
	throttledUntilDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "throttled_until_timestamp_seconds"),
		"When the exporter's hold on API requests after an HTTP 429 ends, as a Unix timestamp; 0 when none is in force.",
		nil, nil)
	scrapeDurationDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "scrape", "duration_seconds"),
		"Wall time this scrape spent collecting batch data.",
		nil, nil)
	batchesConfiguredDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "batches_configured"),
		"Number of configured batches.",
		nil, nil)
	batchesListedDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "batches_listed"),
		"Number of configured batches by where they are listed: config (the configuration file), batch_file, or api (the intake API).",
		[]string{"source"}, nil)
	batchesRetiredDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "batches_retired"),
		"Number of configured batches retired: finished longer ago than the retention, no longer read or exported.",
		nil, nil)

	// batchFamilies are the families of a batch's series, in name order
	// (the order of an exposition).
	batchFamilies = sortedFamilies(batchStatusFamily, batchDevicesFamily, batchDeviceErrorsFamily,
		batchStartedFamily, batchCompletedFamily, batchDurationFamily, batchLastSuccessFamily,
		batchScrapeSuccessFamily)

	allDescs = []*prometheus.Desc{
		batchStatusDesc, batchDevicesDesc, batchDeviceErrorsDesc, batchStartedDesc,
		batchCompletedDesc, batchDurationDesc, batchLastSuccessDesc, batchScrapeSuccessDesc,
		customerInfoDesc, upDesc, scrapeDurationDesc, batchesConfiguredDesc, batchesListedDesc, throttledUntilDesc,
		batchesRetiredDesc, apiLastSuccessDesc,
	}
)

// batchFamily is one metric family of a batch's series.
type batchFamily struct {
	name, help string
	// labels are the names of its variable labels, in their order.
	labels []string
	desc   *prometheus.Desc
	// index is the family's place in batchFamilies.
	index int
}

// newBatchFamily defines the family partnercenter_batch_<name>, labelled
// with batchLabels and extra.
func newBatchFamily(name, help string, extra ...string) *batchFamily {
	fq := prometheus.BuildFQName(namespace, "batch", name)
	labels := append(batchLabels[:2:2], extra...)
	return &batchFamily{name: fq, help: help, labels: labels, desc: prometheus.NewDesc(fq, help, labels, nil)}
}

// sortedFamilies sorts fs by name and numbers them in that order.
func sortedFamilies(fs ...*batchFamily) []*batchFamily {
	slices.SortFunc(fs, func(a, b *batchFamily) int { return strings.Compare(a.name, b.name) })
	for i, f := range fs {
		f.index = i
	}
	return fs
}

// View is what a Scrape emits.
type View int

const (
	// ViewAll is /metrics: every listed batch and the exporter as a whole.
	ViewAll View = iota
	// ViewBatches is /probe: the named batches' series and nothing about
	// the exporter, so that one target per batch cannot turn one batch's
	// failure into an API-wide signal.
	ViewBatches
	// ViewExporter is /metrics?collect[]=exporter: the API-wide health of
	// the exporter (up, last success, throttling) and no batch read.
	ViewExporter
)

// Customer is a configured customer as customer_info shows it.
type Customer struct {
	ID, Name string
}

// Scrape is one scrape's view of the exporter: the read policy, customers
// and batches as they were when the scrape began, bound to the scrape's
// context (and so to its deadline). The Reader it reads through, and its
// Store, outlive it.
type Scrape struct {
	ctx       context.Context
	policy    batchstate.ReadPolicy
	customers []Customer
	targets   []batchstate.Target
	// listed are the batches API health is judged on: every listed batch,
	// whatever the view reads.
	listed []batchstate.Target
	view   View
	src    batchstate.Source
	reader *Reader
	now    func() time.Time
}

// NewScrape returns the collector for one scrape of every listed batch,
// read under policy, with customer_info for each of customers.
func NewScrape(ctx context.Context, policy batchstate.ReadPolicy, customers []Customer, targets []batchstate.Target, src batchstate.Source, reader *Reader) *Scrape {
	return &Scrape{ctx: ctx, policy: policy, customers: customers, targets: targets, listed: targets, src: src, reader: reader, now: time.Now}
}

// NewProbe returns the collector for one probe of some batches: their
// series, nothing about the exporter as a whole.
func NewProbe(ctx context.Context, policy batchstate.ReadPolicy, targets []batchstate.Target, src batchstate.Source, reader *Reader) *Scrape {
	s := NewScrape(ctx, policy, nil, targets, src, reader)
	s.view = ViewBatches
	return s
}

// NewExporterHealth returns the collector of the exporter's API-wide
// health, judged on the listed batches; it reads none of them, but may
// read one finished batch as the canary (see Reader.Up).
func NewExporterHealth(ctx context.Context, policy batchstate.ReadPolicy, listed []batchstate.Target, src batchstate.Source, reader *Reader) *Scrape {
	s := NewScrape(ctx, policy, nil, nil, src, reader)
	s.listed, s.view = listed, ViewExporter
	return s
}

// Describe sends the fixed set of descriptors; it does no I/O.
func (s *Scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the batches that are due and emits the metrics of its
// view. Serve gives the same exposition, reusing what settled batches
// export.
func (s *Scrape) Collect(ch chan<- prometheus.Metric) {
	start := s.now()
	results, retired := s.readBatches()
	now := s.now()
	for _, r := range results {
		emitBatch(func(m prometheus.Metric) { ch <- m }, r, now)
	}
	s.collectRest(ch, start, retired)
}

// readBatches reads the batches of the view that are due and returns those
// that are exported, in target order, and how many are retired.
func (s *Scrape) readBatches() (exported []batchstate.Result, retired int) {
	if s.view == ViewExporter {
		return nil, 0
	}
	results := s.reader.Read(s.ctx, s.src, s.targets, s.policy)
	exported = results[:0]
	for _, r := range results {
		if r.Retired {
			retired++
			continue
		}
		exported = append(exported, r)
	}
	return exported, retired
}

// collectRest emits what the view shows beside the batches' series: API
// health, the customers and the counts, and the scrape's duration since
// start.
func (s *Scrape) collectRest(ch chan<- prometheus.Metric, start time.Time, retired int) {
	if s.view == ViewBatches {
		return
	}
	s.collectHealth(ch, s.policy)
	if s.view == ViewExporter {
		return
	}
	for _, c := range s.customers {
		ch <- prometheus.MustNewConstMetric(customerInfoDesc, prometheus.GaugeValue, 1, c.ID, c.Name)
	}
	ch <- prometheus.MustNewConstMetric(batchesConfiguredDesc, prometheus.GaugeValue, float64(len(s.targets)))
	for _, src := range listedSources(s.targets) {
		ch <- prometheus.MustNewConstMetric(batchesListedDesc, prometheus.GaugeValue, float64(src.count), src.name)
	}
	ch <- prometheus.MustNewConstMetric(batchesRetiredDesc, prometheus.GaugeValue, float64(retired))
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, s.now().Sub(start).Seconds())
}

// collectHealth emits the API-wide health: facts about the exporter, the
// same whichever view asks.
func (s *Scrape) collectHealth(ch chan<- prometheus.Metric, policy batchstate.ReadPolicy) {
	up := s.reader.Up(s.ctx, s.src, s.listed, policy)
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, boolToFloat(up))
	ch <- prometheus.MustNewConstMetric(throttledUntilDesc, prometheus.GaugeValue, unixSeconds(s.src.ThrottledUntil()))
	ch <- prometheus.MustNewConstMetric(apiLastSuccessDesc, prometheus.GaugeValue, unixSeconds(s.reader.LastSuccess()))
}

// emitBatch emits the series of one exported batch. For a settled batch
// they depend on the target, the Batch and LastSuccess only (not on now),
// which is what lets Serve reuse them.
func emitBatch(emit func(prometheus.Metric), r batchstate.Result, now time.Time) {
	labels := []string{r.CustomerID, r.TrackingID}
	gauge := func(desc *prometheus.Desc, v float64, extra ...string) {
		emit(prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(labels[:2:2], extra...)...))
	}
	gauge(batchScrapeSuccessDesc, boolToFloat(r.Batch != nil && r.LastError == nil))
	b := r.Batch
	if b == nil {
		return
	}
	gauge(batchLastSuccessDesc, unixSeconds(r.LastSuccess))
	for _, st := range partnercenter.Statuses {
		gauge(batchStatusDesc, boolToFloat(b.Status == st), st.String())
		gauge(batchDevicesDesc, float64(b.Devices[st]), st.String())
	}
	for _, e := range topErrors(b) {
		// Label values must be valid UTF-8 or the metric cannot be built;
		// codes and descriptions come from the service unchecked.
		gauge(batchDeviceErrorsDesc, float64(e.Devices), validUTF8(e.Code), validUTF8(e.Description))
	}
	if !b.StartedTime.IsZero() {
		gauge(batchStartedDesc, unixSeconds(b.StartedTime))
	}
	if !b.CompletedTime.IsZero() {
		gauge(batchCompletedDesc, unixSeconds(b.CompletedTime))
	}
	if d, _, ok := b.Duration(now); ok {
		gauge(batchDurationDesc, d.Seconds())
	}
}

// topErrors keeps the maxErrorCodesPerBatch codes with the most devices
// (ties in first-seen order) and sums the rest under "other". A code the
// service itself calls "other" joins that sum, so label sets stay unique.
func topErrors(b *partnercenter.Batch) []partnercenter.ErrorCount {
	codes := b.ErrorsByDevices()
	other := b.OtherErrorDevices
	codes = slices.DeleteFunc(codes, func(e partnercenter.ErrorCount) bool {
		if e.Code == otherErrorCode {
			other += e.Devices
			return true
		}
		return false
	})
	if len(codes) > maxErrorCodesPerBatch {
		for _, e := range codes[maxErrorCodesPerBatch:] {
			other += e.Devices
		}
		codes = codes[:maxErrorCodesPerBatch]
	}
	if other > 0 {
		codes = append(codes, partnercenter.ErrorCount{Code: otherErrorCode, Devices: other})
	}
	return codes
}

func validUTF8(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// unixSeconds is t as a Unix timestamp, or 0 for the zero time (unset).
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sourceCount is how many batches one source lists.
type sourceCount struct {
	name  string
	count int
}

// listedSources counts the batches by where they are listed. Every
// source is reported, 0 included, so that a source emptied shows as 0
// rather than as a series that vanished.
func listedSources(targets []batchstate.Target) []sourceCount {
	counts := []sourceCount{{name: "config"}, {name: "batch_file"}, {name: "api"}}
	for _, t := range targets {
		switch t.Origin {
		case "":
			counts[0].count++
		case batchstate.OriginAPI:
			counts[2].count++
		default:
			counts[1].count++
		}
	}
	return counts
}
