package e2e

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// hashmodReplicas is the number of exporters of the sharded example.
const hashmodReplicas = 3

// hashmodBatch is one batch of the sharded end-to-end test.
type hashmodBatch struct {
	customer, id, status string
}

// hashmodBatches are twelve batches over two customers, half of them
// finished and half still processing, so that both kinds are sharded.
func hashmodBatches() []hashmodBatch {
	var out []hashmodBatch
	for i := range 12 {
		b := hashmodBatch{customer: testkit.Customer1, id: fmt.Sprintf("30000000-0000-4000-8000-0000000000%02d", i+1), status: "finished"}
		if i >= 6 {
			b.customer = testkit.Customer2
		}
		if i%2 == 1 {
			b.status = "processing"
		}
		out = append(out, b)
	}
	return out
}

// hashmodShard is what Prometheus' hashmod relabel action computes: the
// last 8 bytes of the value's MD5, big-endian, modulo m. The test uses it
// to check Prometheus sent each batch where the example means it to go.
func hashmodShard(value string, m uint64) int {
	sum := md5.Sum([]byte(value)) // Prometheus' choice of hash, not for security.
	return int(binary.BigEndian.Uint64(sum[8:]) % m)
}

// TestPrometheusHashmodEndToEnd runs three exporter replicas with one
// configuration and a real Prometheus with the sharded example, and checks
// each batch is read once, by the replica of its shard, and arrives in
// Prometheus once, with the labels of a /metrics scrape.
func TestPrometheusHashmodEndToEnd(t *testing.T) {
	prometheusBin := requireTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	exporterBin := buildExporterBinary(t, dir)
	batches := hashmodBatches()
	shards := shardBatches(t, batches, exampleShardKey)
	srv := hashmodFake(t, batches)
	configPath := hashmodExporterConfig(t, dir, srv, batches)

	ctx, cancel := context.WithTimeout(t.Context(), e2eLiveTimeout)
	defer cancel()
	replicas, addrs := startReplicas(ctx, t, dir, exporterBin, configPath)

	promAddr := testkit.FreeLoopbackAddr(t)
	prom := testkit.StartLogged(t, dir, "prometheus", prometheusBin,
		"--config.file="+writeHashmodPrometheusConfig(t, dir, addrs, testkit.FreeLoopbackAddr(t)),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn")
	api := prometheusAPI{base: "http://" + promAddr}
	all := append(slices.Clone(replicas), prom)
	waitForProbes(ctx, t, api, all, batches)

	setup := probeSetup{job: "partnercenter", target: func(b hashmodBatch) probeTargetWant {
		n := hashmodShard(exampleShardKey(b), hashmodReplicas)
		return probeTargetWant{pool: fmt.Sprintf("partnercenter-%d", n), instance: addrs[n]}
	}}
	checkProbeTargets(t, api, batches, setup)
	seen := checkProbeSeries(t, api, batches, setup)
	checkExporterHealth(ctx, t, api, all, addrs[:])
	checkReadOnce(t, srv, batches)

	// Prometheus goes first: no probe may read while the replicas' own
	// /metrics are compared below.
	prom.Terminate(ctx, t)
	var exposition string
	for n := range replicas {
		exposition = checkReplicaReadItsShard(t, srv, batches, addrs[n], shards[n])
	}
	checkSeriesAsOnMetrics(t, seen, exposition)
	for _, r := range replicas {
		if code := r.Terminate(ctx, t); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM, want 0\n%s", r.Name, code, r.Output())
		}
	}
}

// exampleShardKey is what the sharded example hashes: the tracking ID.
func exampleShardKey(b hashmodBatch) string { return b.id }

// waitForProbes waits until Prometheus has scraped every batch's target
// successfully and has every batch's status.
func waitForProbes(ctx context.Context, t *testing.T, api prometheusAPI, procs []*testkit.Process, batches []hashmodBatch) {
	t.Helper()
	e2eWait(ctx, t, fmt.Sprintf("%d probe targets up", len(batches)), procs, func() (bool, error) {
		return allTargetsUp(api, len(batches))
	})
	e2eWait(ctx, t, "every batch's status in Prometheus", procs, func() (bool, error) {
		r, err := api.query("partnercenter_batch_status == 1")
		return len(r) >= len(batches), err
	})
}

// shardBatches groups the batch IDs by shard, and stops the test if a
// shard is empty: then the IDs would not show that the batches split.
func shardBatches(t *testing.T, batches []hashmodBatch, key func(hashmodBatch) string) [hashmodReplicas][]string {
	t.Helper()
	var shards [hashmodReplicas][]string
	for _, b := range batches {
		n := hashmodShard(key(b), hashmodReplicas)
		shards[n] = append(shards[n], b.id)
	}
	for n, s := range shards {
		if len(s) == 0 {
			t.Fatalf("no test batch hashes to shard %d; pick other IDs", n)
		}
	}
	t.Logf("shard sizes %d, %d, %d", len(shards[0]), len(shards[1]), len(shards[2]))
	return shards
}

func hashmodFake(t *testing.T, batches []hashmodBatch) *partnercentertest.Server {
	t.Helper()
	srv, err := partnercentertest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.SetCredentials(testkit.ClientID, testkit.ClientSecret)
	for _, b := range batches {
		srv.SetBatch(b.customer, b.id, partnercentertest.Batch{TrackingID: b.id, Status: b.status, StartedTime: "2026-11-25T10:00:00Z"})
	}
	return srv
}

// hashmodExporterConfig writes the one configuration all replicas share.
// A long refresh_interval means that a processing batch, once read, is
// not read again during the test: every read counted comes from a batch
// the replica had not read before.
func hashmodExporterConfig(t *testing.T, dir string, srv *partnercentertest.Server, batches []hashmodBatch) string {
	t.Helper()
	byCustomer := map[string][]string{}
	for _, b := range batches {
		byCustomer[b.customer] = append(byCustomer[b.customer], b.id)
	}
	path := testkit.WriteConfig(t, dir, srv, byCustomer)
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 10m")
	return path
}

// startReplicas starts the exporter replicas, each on a loopback port of
// its own, and waits until all are ready.
func startReplicas(ctx context.Context, t *testing.T, dir, bin, configPath string) ([]*testkit.Process, [hashmodReplicas]string) {
	t.Helper()
	var procs []*testkit.Process
	var addrs [hashmodReplicas]string
	for n := range addrs {
		addrs[n] = testkit.FreeLoopbackAddr(t)
		procs = append(procs, testkit.StartLogged(t, dir, fmt.Sprintf("exporter-%d", n), bin,
			"--config.file="+configPath, "--web.listen-address="+addrs[n]))
	}
	for n, addr := range addrs {
		e2eWait(ctx, t, fmt.Sprintf("exporter-%d ready", n), procs, func() (bool, error) {
			_, status, err := testkit.Fetch("http://" + addr + "/-/ready")
			return err == nil && status == http.StatusOK, nil
		})
	}
	return procs, addrs
}

// writeHashmodPrometheusConfig copies the sharded example with replica N's
// address in place of partnercenter-N:10046 and shorter intervals; the
// relabelling is the example's, unchanged.
func writeHashmodPrometheusConfig(t *testing.T, dir string, addrs [hashmodReplicas]string, alertmanagerAddr string) string {
	t.Helper()
	// Through YAML and back first, so that comments naming the
	// placeholders are gone and only the configuration is replaced.
	var parsed map[string]any
	readYAML(t, examplesPrometheusShards, &parsed)
	data, err := yaml.Marshal(parsed)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for n, addr := range addrs {
		placeholder := fmt.Sprintf("partnercenter-%d:10046", n)
		// The /sd URL, the __address__ replacement and the target of
		// the exporters' own scrape.
		if c := strings.Count(text, placeholder); c != 3 {
			t.Fatalf("%s names %s %d times, want 3", examplesPrometheusShards, placeholder, c)
		}
		text = strings.ReplaceAll(text, placeholder, addr)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := shortenGlobalIntervals(cfg); err != nil {
		t.Fatal(err)
	}
	if err := redirectAlerts(cfg, alertmanagerAddr); err != nil {
		t.Fatal(err)
	}
	shortenShardIntervals(t, cfg)
	return writeExampleCopy(t, dir, examplesPrometheusShards, cfg)
}

// shortenShardIntervals sets the test's scrape interval and timeout on
// every scrape config, and its service discovery refresh.
func shortenShardIntervals(t *testing.T, cfg map[string]any) {
	t.Helper()
	scrapes, _ := cfg["scrape_configs"].([]any)
	// One per shard, and the replicas' own metrics.
	if len(scrapes) != hashmodReplicas+1 {
		t.Fatalf("%d scrape configs, want %d", len(scrapes), hashmodReplicas+1)
	}
	for _, s := range scrapes {
		job := s.(map[string]any)
		job["scrape_interval"], job["scrape_timeout"] = e2eScrapeInterval, e2eScrapeTimeout
		sds, _ := job["http_sd_configs"].([]any)
		for _, sd := range sds {
			sd.(map[string]any)["refresh_interval"] = e2eScrapeInterval
		}
	}
}

// allTargetsUp reports whether Prometheus has at least want active probe
// targets, and every target scraped successfully at least once. More than want is for
// checkHashmodTargets to report, rather than waiting for the timeout.
func allTargetsUp(api prometheusAPI, want int) (bool, error) {
	targets, err := api.activeTargets()
	if err != nil {
		return false, err
	}
	probes := 0
	for _, target := range targets {
		if target.Health != "up" {
			return false, fmt.Errorf("target %s: %s %s", target.ScrapeURL, target.Health, target.LastError)
		}
		if isProbe(target) {
			probes++
		}
	}
	return probes >= want, nil
}

// probeSetup is what one sharded setup should make of each batch's target.
type probeSetup struct {
	// job is the job label of the probe targets.
	job string
	// target is where the batch's probe should go.
	target func(hashmodBatch) probeTargetWant
}

// probeTargetWant is one batch's target: its scrape pool and instance
// label, the replica's address as Prometheus reaches it.
type probeTargetWant struct {
	pool, instance string
}

// checkProbeTargets checks Prometheus has exactly one target per batch,
// in the scrape pool of its shard, probing its shard's replica, and that
// every target keeps its own identity: its labels are customer_id,
// batch_tracking_id, instance and job, nothing more (no customer_name).
func checkProbeTargets(t *testing.T, api prometheusAPI, batches []hashmodBatch, setup probeSetup) {
	t.Helper()
	targets, err := api.activeTargets()
	if err != nil {
		t.Fatal(err)
	}
	targets = slices.DeleteFunc(targets, func(target promTarget) bool { return !isProbe(target) })
	got := map[string]bool{}
	for _, target := range targets {
		got[target.ScrapePool+" "+target.ScrapeURL+" "+renderLabels(target.Labels)] = true
	}
	want := map[string]bool{}
	for _, b := range batches {
		w := setup.target(b)
		q := url.Values{"customer_id": {b.customer}, "batch_tracking_id": {b.id}}
		labels := map[string]string{"batch_tracking_id": b.id, "customer_id": b.customer, "instance": w.instance, "job": setup.job}
		want[fmt.Sprintf("%s http://%s/probe?%s %s", w.pool, w.instance, q.Encode(), renderLabels(labels))] = true
	}
	if len(targets) != len(batches) || !maps.Equal(got, want) {
		t.Errorf("%d targets (scrape pool, URL, labels):\n got  %v\n want %v", len(targets),
			slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// checkProbeSeries checks each target has an up series of its own, and
// every batch series arrived with the job and instance of its batch's
// target and no exported_ label. It returns the batch series without job
// and instance, for checkSeriesAsOnMetrics.
func checkProbeSeries(t *testing.T, api prometheusAPI, batches []hashmodBatch, setup probeSetup) map[string]bool {
	t.Helper()
	up, err := api.query(`up{batch_tracking_id!=""}`)
	if err != nil {
		t.Fatal(err)
	}
	wantUp := map[string]bool{}
	byID := map[string]hashmodBatch{}
	for _, b := range batches {
		byID[b.id] = b
		labels := map[string]string{
			"__name__": "up", "batch_tracking_id": b.id, "customer_id": b.customer,
			"instance": setup.target(b).instance, "job": setup.job,
		}
		wantUp[renderLabels(labels)+" value=1"] = true
	}
	if got := sampleSet(up); len(up) != len(batches) || !maps.Equal(got, wantUp) {
		t.Errorf("%d up series, want one per target (%d):\n got  %v\n want %v", len(up), len(batches),
			slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(wantUp)))
	}

	series, err := api.query(`{__name__=~"partnercenter_batch_.+"}`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range series {
		for name := range s.Metric {
			if strings.HasPrefix(name, "exported_") {
				t.Errorf("series %s has the label %s", renderLabels(s.Metric), name)
			}
		}
		b, ok := byID[s.Metric["batch_tracking_id"]]
		if !ok {
			t.Errorf("series %s names no test batch", renderLabels(s.Metric))
			continue
		}
		if s.Metric["job"] != setup.job || s.Metric["instance"] != setup.target(b).instance {
			t.Errorf("series %s: want job %s and instance %s", renderLabels(s.Metric), setup.job, setup.target(b).instance)
		}
		rest := maps.Clone(s.Metric)
		delete(rest, "job")
		delete(rest, "instance")
		seen[renderLabels(rest)] = true
	}
	return seen
}

// isProbe tells a batch's probe target from a replica's own scrape.
func isProbe(target promTarget) bool { return strings.Contains(target.ScrapeURL, "/probe?") }

// checkExporterHealth checks the API health of every replica arrived from
// its own /metrics?collect[]=exporter scrape, with the job and instance
// of its probes, so that the health alerts and their inhibitions work:
// one partnercenter_up and one partnercenter_api_last_success series per
// replica, and none from a probe.
func checkExporterHealth(ctx context.Context, t *testing.T, api prometheusAPI, procs []*testkit.Process, addrs []string) {
	t.Helper()
	want := map[string]bool{}
	for _, addr := range addrs {
		want[renderLabels(map[string]string{"__name__": "partnercenter_up", "instance": addr, "job": "partnercenter"})+" value=1"] = true
	}
	// A replica's own scrape may come before its first probe read.
	e2eWait(ctx, t, "every replica's partnercenter_up and last API success", procs, func() (bool, error) {
		r, err := api.query("partnercenter_api_last_success_timestamp_seconds > 0")
		return len(r) >= len(addrs), err
	})
	up, err := api.query("partnercenter_up")
	if err != nil {
		t.Fatal(err)
	}
	if got := sampleSet(up); !maps.Equal(got, want) {
		t.Errorf("partnercenter_up:\n got  %v\n want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	last, err := api.query("partnercenter_api_last_success_timestamp_seconds > 0")
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != len(addrs) {
		t.Errorf("%d replicas report a last API success, want %d: %v", len(last), len(addrs), sampleSet(last))
	}
}

// checkSeriesAsOnMetrics checks the batch series Prometheus got through
// /probe are exactly those of a /metrics scrape that read every batch:
// the same names and labels (job and instance aside), no more, no fewer.
func checkSeriesAsOnMetrics(t *testing.T, seen map[string]bool, exposition string) {
	t.Helper()
	want := map[string]bool{}
	for name, values := range testkit.ParseMetrics(t, exposition) {
		if !strings.HasPrefix(name, "partnercenter_batch_") {
			continue
		}
		for labels := range *values {
			m := map[string]string{"__name__": name}
			for pair := range strings.SplitSeq(labels, ",") {
				if k, v, ok := strings.Cut(pair, "="); ok {
					m[k] = v
				}
			}
			want[renderLabels(m)] = true
		}
	}
	if !maps.Equal(seen, want) {
		t.Errorf("batch series through /probe differ from /metrics:\n got  %v\n want %v",
			slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Keys(want)))
	}
}

// renderLabels renders a label set as its labels, sorted, so that an
// extra or renamed label shows.
func renderLabels(m map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, name+"="+m[name])
	}
	return strings.Join(parts, " ")
}

// sampleSet renders each sample as all its labels and its value.
func sampleSet(samples []promSample) map[string]bool {
	out := map[string]bool{}
	for _, s := range samples {
		out[renderLabels(s.Metric)+" value="+s.value()] = true
	}
	return out
}

// checkReadOnce checks the fake was asked for each batch exactly once,
// over all replicas.
func checkReadOnce(t *testing.T, srv *partnercentertest.Server, batches []hashmodBatch) {
	t.Helper()
	for _, b := range batches {
		if got := srv.BatchRequests(b.customer, b.id); got != 1 {
			t.Errorf("batch %s requested %d times, want 1", b.id, got)
		}
	}
	if got := srv.TotalBatchRequests(); got != len(batches) {
		t.Errorf("%d batch requests in all, want %d", got, len(batches))
	}
}

// checkReplicaReadItsShard scrapes a replica's /metrics, which reads every
// configured batch the replica has not read yet. So the batches it reads
// now are exactly those outside its shard, and its request counter, less
// those reads, is the size of its shard: what it read for Prometheus.
// It returns the /metrics exposition.
func checkReplicaReadItsShard(t *testing.T, srv *partnercentertest.Server, batches []hashmodBatch, addr string, shard []string) string {
	t.Helper()
	before := batchRequestCounts(srv, batches)
	body, status, err := testkit.Fetch("http://" + addr + "/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %v", addr, status, err)
	}
	readNow := 0
	for _, b := range batches {
		delta := srv.BatchRequests(b.customer, b.id) - before[b.id]
		want := 1
		if slices.Contains(shard, b.id) {
			want = 0
		}
		if delta != want {
			t.Errorf("replica %s: /metrics read batch %s %d times, want %d (in its shard: %t)", addr, b.id, delta, want, want == 0)
		}
		readNow += delta
	}
	var requests float64
	for _, v := range *testkit.ParseMetrics(t, body)["partnercenter_api_requests_total"] {
		requests += v
	}
	if got := int(requests) - readNow; got != len(shard) {
		t.Errorf("replica %s sent %d API requests before its /metrics scrape, want %d (its shard)", addr, got, len(shard))
	}
	return body
}

func batchRequestCounts(srv *partnercentertest.Server, batches []hashmodBatch) map[string]int {
	out := map[string]int{}
	for _, b := range batches {
		out[b.id] = srv.BatchRequests(b.customer, b.id)
	}
	return out
}
