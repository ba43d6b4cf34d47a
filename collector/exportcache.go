package collector

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
)

// maxFormatSlots bounds the formats whose encoded series are kept: a
// deployment uses one or two, and a client cycling through Accept headers
// must not grow every batch's memory without end. Further formats are
// encoded at each scrape.
const maxFormatSlots = 4

// exportCache keeps what settled batches export, across scrapes: their
// series encoded in each format a scrape asked for. An entry is used only
// while it was built from the very state a scrape reads from the store:
// the same *partnercenter.Batch (a read stores a new one, retiring stores
// a new one, a read under new settings stores a new one) and the same
// LastSuccess, of a batch that is settled. So a batch that changes,
// retires, is removed or is read under new settings is never served from
// it; the entry is rebuilt or, once stale, swept.
type exportCache struct {
	mu      sync.Mutex
	batches map[batchKey]*batchSeries
	// swept is the number of entries after the last sweep: the cache is
	// swept once it holds twice that (and a margin), so that entries of
	// batches that are gone cost at most as much again as the live ones.
	swept int
	slots []*formatSlot
	// unslotted are the formats seen that have no slot: written in parts
	// but not kept, or not written in parts at all (nil slot).
	unslotted map[expfmt.Format]*formatSlot
}

type batchKey struct{ customerID, trackingID string }

func newExportCache() *exportCache {
	return &exportCache{batches: map[batchKey]*batchSeries{}, unslotted: map[expfmt.Format]*formatSlot{}}
}

// sweepMargin is how many entries may go stale before a first sweep.
const sweepMargin = 1024

// series returns the series source of each exported result, sorted by
// (tracking ID, customer ID), the order of their labels in an exposition,
// without repeating a batch. Settled batches come from the cache (entries
// are made for those not yet in it); the others are built for this scrape.
func (c *exportCache) series(results []batchstate.Result, store *batchstate.Store) []*batchSeries {
	out := make([]*batchSeries, 0, len(results))
	c.mu.Lock()
	for _, r := range results {
		if !r.Settled() {
			out = append(out, &batchSeries{result: r})
			continue
		}
		k := batchKey{r.CustomerID, r.TrackingID}
		b := c.batches[k]
		if b == nil || !b.current(r) {
			b = &batchSeries{result: r, cached: true}
			c.batches[k] = b
		}
		out = append(out, b)
	}
	if len(c.batches) > 2*c.swept+sweepMargin {
		c.sweepLocked(store)
	}
	c.mu.Unlock()
	// A batch listed twice is exported once: a registry drops the repeated
	// series.
	slices.SortStableFunc(out, compareBatches)
	return slices.CompactFunc(out, func(a, b *batchSeries) bool { return compareBatches(a, b) == 0 })
}

// sweepLocked drops the entries that no longer match what the store holds.
func (c *exportCache) sweepLocked(store *batchstate.Store) {
	for k, b := range c.batches {
		s, ok := store.Get(b.result.Target)
		if !ok || !b.current(batchstate.Result{Target: b.result.Target, BatchState: s}) {
			delete(c.batches, k)
		}
	}
	c.swept = len(c.batches)
}

// forget drops the entry of t, whose exported state just changed.
func (c *exportCache) forget(t batchstate.Target) {
	c.mu.Lock()
	delete(c.batches, batchKey{t.CustomerID, t.TrackingID})
	c.mu.Unlock()
}

// slot returns the slot of format, or nil when its families are encoded
// whole at each scrape. A format without a slot of its own is encoded in
// parts that are not kept.
func (c *exportCache) slot(format expfmt.Format) *formatSlot {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.slots {
		if s.format == format {
			return s
		}
	}
	if s, ok := c.unslotted[format]; ok {
		return s
	}
	index := len(c.slots)
	if index >= maxFormatSlots {
		index = -1
	}
	s, err := newFormatSlot(index, format)
	if err != nil {
		// Encoding a header failed: encode whole, as promhttp does.
		s = nil
	}
	switch {
	case s != nil && index >= 0:
		c.slots = append(c.slots, s)
	case len(c.unslotted) < 64:
		c.unslotted[format] = s
	}
	return s
}

// batchSeries is one exported batch's series for a scrape: kept across
// scrapes (cached) for a settled batch, built for one scrape otherwise.
type batchSeries struct {
	result batchstate.Result
	cached bool
	// built holds the metrics of a batch not cached, built once per
	// scrape.
	built [][]*dto.Metric
	// enc are the encodings kept, by format slot, of a cached batch. Two
	// scrapes that encode a batch at once store equal bytes; either wins.
	enc [maxFormatSlots]atomic.Pointer[encodedBatch]
}

// current reports whether b was built from the state r shows.
func (b *batchSeries) current(r batchstate.Result) bool {
	return r.Settled() && !r.Retired && r.Batch == b.result.Batch && r.LastSuccess.Equal(b.result.LastSuccess) &&
		r.CustomerID == b.result.CustomerID && r.TrackingID == b.result.TrackingID
}

// metrics builds the batch's series. The series of a settled batch do not
// depend on now; those of a running batch are built once per scrape.
func (b *batchSeries) metrics(now time.Time) [][]*dto.Metric {
	if b.cached {
		return batchMetrics(b.result, now)
	}
	if b.built == nil {
		b.built = batchMetrics(b.result, now)
	}
	return b.built
}

func compareBatches(a, b *batchSeries) int {
	if c := strings.Compare(a.result.TrackingID, b.result.TrackingID); c != 0 {
		return c
	}
	return strings.Compare(a.result.CustomerID, b.result.CustomerID)
}
