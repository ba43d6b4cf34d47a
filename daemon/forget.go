package daemon

import (
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
)

// forgetTimer sweeps the store when the next batch that left the
// membership has outlived forget_removed_batches_after. Between those
// times it holds a timer, not a goroutine.
type forgetTimer struct {
	store  *batchstate.Store
	logger log.Logger

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// schedule sets the timer for the store's next expiry; call it whenever
// the membership or the period changed.
func (f *forgetTimer) schedule() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scheduleLocked()
}

func (f *forgetTimer) scheduleLocked() {
	if f.stopped {
		return
	}
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if at, ok := f.store.NextExpiry(); ok {
		f.timer = time.AfterFunc(time.Until(at), f.fire)
	}
}

// fire sweeps under mu, so that stop waits for a sweep under way: once
// stop returns, the forgetting writes nothing more to the storage.
func (f *forgetTimer) fire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	if n := f.store.Sweep(time.Now()); n > 0 {
		level.Info(f.logger).Log("msg", "forgot batches no longer listed for forget_removed_batches_after", "batches", n)
	}
	f.scheduleLocked()
}

// stop ends the sweeps; it may be called more than once.
func (f *forgetTimer) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
}
