package daemon

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/batchpages"
	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/intake"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// liveConfig is one loaded configuration with the client built from it.
// It is replaced whole on reload and never changed in place.
type liveConfig struct {
	cfg    *config.Config
	client *partnercenter.Client
	// httpc is the HTTP client under client, kept to close its idle
	// connections once a reload replaces it.
	httpc *http.Client
	// targets are the batches to read: the configuration's, then those of
	// the batch files.
	targets []batchstate.Target
	// listed indexes targets by store key, for /probe.
	listed map[string]batchstate.Target
	// policy is how the configuration wants batches read, and customers
	// the configured customers for customer_info: what the collector
	// takes of the configuration.
	policy    batchstate.ReadPolicy
	customers []collector.Customer
}

// readPolicy is how cfg wants batches read.
func readPolicy(cfg *config.Config) batchstate.ReadPolicy {
	return batchstate.ReadPolicy{
		Refresh:   cfg.PartnerCenter.RefreshInterval,
		Timeout:   cfg.PartnerCenter.RequestTimeout,
		Retention: cfg.Retention,
	}
}

// customers lists cfg's customers, in file order, for customer_info.
func customers(cfg *config.Config) []collector.Customer {
	out := make([]collector.Customer, len(cfg.Customers))
	for i, c := range cfg.Customers {
		out[i] = collector.Customer{ID: c.ID, Name: c.Name}
	}
	return out
}

// customerName returns the name the configuration gives a customer, and
// whether any configured batch or customer entry names it.
func (l *liveConfig) customerName(id string) (name string, known bool) {
	for _, c := range l.cfg.Customers {
		if c.ID == id {
			return c.Name, true
		}
	}
	for _, t := range l.targets {
		if t.CustomerID == id {
			return t.CustomerName, true
		}
	}
	return "", false
}

// exporterState holds what survives reloads: the live configuration, what
// is known of the batches and who reads them, and the reload metrics. Scrapes take one snapshot of the live
// configuration and use it to the end.
type exporterState struct {
	logger  log.Logger
	load    func() (*config.Config, error)
	httpc   *http.Client
	obs     partnercenter.Observer
	store   *batchstate.Store
	reader  *collector.Reader
	current atomic.Pointer[liveConfig]
	// probes holds the unlisted batches /probe admitted.
	probes *probeAdmissions

	reloadMu      sync.Mutex
	reloadSuccess prometheus.Gauge
	reloadTime    prometheus.Gauge

	intake *batchIntake
	// holds are the 429 holds by partner tenant (see holdFor), kept across
	// reloads: a client rebuilt for the same tenant must obey the hold its
	// predecessor got. Only reloads add to it, one entry per tenant ever
	// configured.
	holdsMu sync.Mutex
	holds   map[string]*partnercenter.Hold
	// forget sweeps the store when a batch that left the membership is
	// due to be forgotten.
	forget *forgetTimer
	// publishMu orders the swaps of the live configuration: a reload and a
	// batch file change may both publish a new batch list.
	publishMu sync.Mutex
	files     batchfiles.Snapshot
	// registered are the batches of the intake API, as of its last change.
	registered []storage.Registration

	// api is the intake API, nil without storage (see openIntake).
	api *intake.Intake
	// storagePath and batchPagesOff are the daemon's options that the
	// intake depends on.
	storagePath   string
	batchPagesOff bool
}

func newExporterState(logger log.Logger, load func() (*config.Config, error), httpc *http.Client,
	obs partnercenter.Observer, reg prometheus.Registerer,
) *exporterState {
	store := batchstate.NewStore()
	s := &exporterState{
		logger: logger,
		load:   load,
		httpc:  httpc,
		obs:    tokenWriteLogger{Observer: obs, logger: logger},
		store:  store,
		holds:  make(map[string]*partnercenter.Hold),
		reader: collector.NewReader(store, log.With(logger, "component", "reader"), 1),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "partnercenter", Subsystem: "config", Name: "last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "partnercenter", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	reg.MustRegister(s.reloadSuccess, s.reloadTime)
	s.probes = newProbeAdmissions(time.Now, s.probesChanged)
	s.intake = newBatchIntake(log.With(logger, "component", "batchfiles"), reg)
	s.forget = &forgetTimer{store: store, logger: log.With(logger, "component", "store")}
	return s
}

// close stops watching the batch files and forgetting batches, so that
// nothing writes to the store any more. It may be called more than once.
func (s *exporterState) close() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.intake.stop()
	s.probes.stop()
	s.forget.stop()
}

// filesChanged takes a new batch file snapshot and, once a configuration
// is live, publishes the batch list it gives.
func (s *exporterState) filesChanged(snap batchfiles.Snapshot) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.files = snap
	s.intake.setInvalidLines(snap)
	if live := s.current.Load(); live != nil {
		s.publishLocked(live.cfg, live.client, live.httpc)
	}
}

// publish swaps in a configuration with the batch list of the latest batch
// file snapshot.
func (s *exporterState) publish(cfg *config.Config, client *partnercenter.Client, httpc *http.Client) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.publishLocked(cfg, client, httpc)
}

// publishLocked lets the store learn the new members before scrapes see
// them, so that a scrape of the new list can record its reads, and a
// scrape still running on the old one cannot bring back a removed batch.
// The store knows the admitted unlisted batches as well, so that /probe's
// reads of them are recorded; /metrics reads and exports the listed ones.
// What is known of a removed batch is kept for
// forget_removed_batches_after.
func (s *exporterState) publishLocked(cfg *config.Config, client *partnercenter.Client, httpc *http.Client) {
	targets := mergeTargets(cfg, s.files, s.registered)
	var old []batchstate.Target
	if live := s.current.Load(); live != nil {
		old = live.targets
	}
	s.probes.published(cfg.Probe, old, targets)
	s.store.SetMembers(slices.Concat(targets, s.probes.targets()), time.Now())
	s.current.Store(&liveConfig{
		cfg: cfg, client: client, httpc: httpc, targets: targets, listed: keyed(targets),
		policy: readPolicy(cfg), customers: customers(cfg),
	})
	s.forget.schedule()
}

// probesChanged publishes the live configuration again after /probe
// admitted or forgot unlisted batches, so that the store follows.
func (s *exporterState) probesChanged() {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if live := s.current.Load(); live != nil {
		s.publishLocked(live.cfg, live.client, live.httpc)
	}
}

// batchFiles is the latest batch file snapshot, for /config.
func (s *exporterState) batchFiles() batchfiles.Snapshot {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	return s.files
}

// live returns the configuration a scrape should use, nil before the
// first successful load.
func (s *exporterState) live() *liveConfig {
	return s.current.Load()
}

// batchListing is what the failed-device pages take of the live
// configuration; ok is false before the first load.
func (s *exporterState) batchListing() (batchpages.Listing, bool) {
	live := s.live()
	if live == nil {
		return batchpages.Listing{}, false
	}
	return batchpages.Listing{Targets: live.targets, MaxFailedDevicesPerBatch: live.cfg.MaxFailedDevicesPerBatch}, true
}

// currentTargets returns the live batch list, nil before the first load.
func (s *exporterState) currentTargets() []batchstate.Target {
	if live := s.live(); live != nil {
		return live.targets
	}
	return nil
}

// reload loads the configuration and swaps it in. On any error the old
// configuration keeps serving and the error is returned.
func (s *exporterState) reload() (err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	defer func() {
		if err != nil {
			s.reloadSuccess.Set(0)
			level.Error(s.logger).Log("msg", "configuration not (re)loaded, keeping the previous one", "err", err)
			return
		}
		s.reloadSuccess.Set(1)
		s.reloadTime.SetToCurrentTime()
	}()
	cfg, err := s.load()
	if err != nil {
		return err
	}
	old := s.current.Load()
	client, httpc, err := s.clientFor(cfg, old)
	if err != nil {
		return fmt.Errorf("partner center client: %w", err)
	}
	if cfg.Intake.Enabled() && s.storagePath == "" {
		return errIntakeNeedsStorage
	}
	if err := s.intake.follow(cfg, s.filesChanged); err != nil {
		return err
	}
	if s.api != nil {
		s.api.Configure(cfg.Intake.BearerTokenFiles, cfg.Intake.MaxBatches)
	}
	s.reader.SetMaxConcurrent(cfg.PartnerCenter.MaxConcurrentRequests)
	s.store.SetForgetAfter(cfg.ForgetRemovedBatchesAfter)
	// A change of the settings reads depend on needs nothing here: the new
	// client's reads carry another stamp, and every stored read with the
	// old one is due again.
	s.publish(cfg, client, httpc)
	if old != nil && old.httpc != httpc && old.httpc != s.httpc {
		// Scrapes still using the old client keep their connections.
		old.httpc.CloseIdleConnections()
	}
	level.Info(s.logger).Log("msg", "configuration loaded", "summary", cfg.Summary())
	return nil
}

// clientFor reuses the old client (and so its cached token) when nothing
// it depends on changed, http_client included.
func (s *exporterState) clientFor(cfg *config.Config, old *liveConfig) (*partnercenter.Client, *http.Client, error) {
	if old != nil && sameClientSettings(old.cfg, cfg) {
		return old.client, old.httpc, nil
	}
	httpc, err := s.httpClientFor(cfg.PartnerCenter.HTTPClient)
	if err != nil {
		return nil, nil, err
	}
	client, err := pcclient.New(cfg, httpc, s.obs, s.holdFor(cfg))
	return client, httpc, err
}

// holdFor returns the 429 hold of the partner tenant cfg reads from: the
// same API and tenant (or token URL, which names the tenant, when
// tenant_id is not set) share one, whatever else changed.
func (s *exporterState) holdFor(cfg *config.Config) *partnercenter.Hold {
	tenant := cfg.Auth.TenantID
	if tenant == "" {
		tenant = cfg.Auth.TokenURL
	}
	key := cfg.PartnerCenter.BaseURL + "\x00" + tenant
	s.holdsMu.Lock()
	defer s.holdsMu.Unlock()
	hold, ok := s.holds[key]
	if !ok {
		hold = &partnercenter.Hold{}
		s.holds[key] = hold
	}
	return hold
}

// tokenWriteLogger logs a rotated refresh token that could not be written
// back, besides counting it: the operator must fix the file before a
// restart makes the exporter redeem the spent token in it.
type tokenWriteLogger struct {
	partnercenter.Observer
	logger log.Logger
}

func (o tokenWriteLogger) RefreshTokenWrite(err error) {
	o.Observer.RefreshTokenWrite(err)
	if err != nil {
		level.Warn(o.logger).Log("msg", "rotated refresh token kept in memory only; until it is written, a restart would redeem the spent one in auth.refresh_token_file", "err", err)
	}
}

// httpClientFor shares the exporter's default transport when http_client
// is empty; settings of its own get a transport of their own.
func (s *exporterState) httpClientFor(hc config.HTTPClient) (*http.Client, error) {
	if hc.IsZero() {
		return s.httpc, nil
	}
	return pcclient.NewHTTPClient(hc)
}

// sameClientSettings reports whether a client built for a serves b: the
// settings of the reads themselves (how often, how many at once) do not
// reach the client.
func sameClientSettings(a, b *config.Config) bool {
	clientPart := func(pc config.PartnerCenter) config.PartnerCenter {
		pc.RefreshInterval, pc.MaxConcurrentRequests = 0, 0
		return pc
	}
	return reflect.DeepEqual(clientPart(a.PartnerCenter), clientPart(b.PartnerCenter)) &&
		reflect.DeepEqual(a.Auth, b.Auth) &&
		a.MaxFailedDevicesPerBatch == b.MaxFailedDevicesPerBatch
}
