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
