package collector

import (
	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
)

// Reader is the batch reader a Scrape reads through, with what the
// batches it has read export: their encoded series, kept across scrapes
// for Serve. It outlives every Scrape, as its Store does.
type Reader struct {
	*batchstate.Reader
	store   *batchstate.Store
	exports *exportCache
}

// NewReader returns a reader that records into store and runs at most
// maxConcurrent reads at a time.
func NewReader(store *batchstate.Store, logger log.Logger, maxConcurrent int) *Reader {
	r := &Reader{Reader: batchstate.NewReader(store, logger, maxConcurrent), store: store, exports: newExportCache()}
	// What a retired batch exported is no longer shown: free it now
	// rather than at the next sweep.
	r.OnRetire(r.exports.forget)
	return r
}
