package testkit

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// LiveHeap is the heap still in use after two collections (the second
// frees what the first's finalizers released): what a value kept alive
// costs, for benchmarks that report bytes per item.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// HeapGrowth runs f while sampling the heap every few milliseconds and
// returns how far it grew above its size before f. Garbage counts too,
// which errs on the safe side.
func HeapGrowth(f func()) uint64 {
	runtime.GC()
	base := HeapBytes()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				peak.Store(max(peak.Load(), HeapBytes()))
			}
		}
	}()
	f()
	close(stop)
	<-done
	top := max(peak.Load(), HeapBytes())
	if top < base {
		return 0
	}
	return top - base
}

// HeapBytes is the heap's object bytes now, live and garbage, read
// without stopping the world.
func HeapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Allocation is what one call cost the heap, as AllocatedBy measures it.
type Allocation struct {
	// Total is every byte allocated during the call, freed or not.
	Total uint64
	// HeapGrowth is how far the heap's allocated bytes (live and not yet
	// collected) grew across the call; negative when a collection ran.
	HeapGrowth int64
}

// AllocatedBy collects garbage, then runs f and returns what it
// allocated. Unlike HeapGrowth it reads the runtime's exact counters
// before and after rather than sampling, so it suits a call whose cost
// shows in its total allocation rather than its peak.
func AllocatedBy(f func()) Allocation {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return Allocation{
		Total:      after.TotalAlloc - before.TotalAlloc,
		HeapGrowth: int64(after.HeapAlloc) - int64(before.HeapAlloc),
	}
}
