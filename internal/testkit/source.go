package testkit

import (
	"context"
	"sync"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// FakeSource is a scripted Partner Center for the reader and the
// collector: it answers each batch as set, 404 for any other, counts the
// calls per batch, and reports the hold and read stamp it is given. It
// has the methods of batchstate.Source without importing it, so that
// batchstate's own tests can use it too.
type FakeSource struct {
	mu        sync.Mutex
	answers   map[string]func(ctx context.Context) (*partnercenter.Batch, error)
	calls     map[string]int
	heldUntil time.Time
	stamp     string
}

// NewFakeSource returns a FakeSource that knows no batch.
func NewFakeSource() *FakeSource {
	return &FakeSource{answers: map[string]func(context.Context) (*partnercenter.Batch, error){}, calls: map[string]int{}}
}

// Set makes fn the answer for one batch.
func (f *FakeSource) Set(customer, batch string, fn func(ctx context.Context) (*partnercenter.Batch, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[customer+"/"+batch] = fn
}

// SetBatch makes b the answer for one batch.
func (f *FakeSource) SetBatch(customer, batch string, b *partnercenter.Batch) {
	f.Set(customer, batch, func(context.Context) (*partnercenter.Batch, error) { return b, nil })
}

// SetErr makes err the answer for one batch.
func (f *FakeSource) SetErr(customer, batch string, err error) {
	f.Set(customer, batch, func(context.Context) (*partnercenter.Batch, error) { return nil, err })
}

// Count is how often one batch was asked for.
func (f *FakeSource) Count(customer, batch string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[customer+"/"+batch]
}

// TotalCalls is how often any batch was asked for.
func (f *FakeSource) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// BatchStatus answers as set, or 404 for a batch never set.
func (f *FakeSource) BatchStatus(ctx context.Context, customer, batch string) (*partnercenter.Batch, error) {
	f.mu.Lock()
	f.calls[customer+"/"+batch]++
	fn, ok := f.answers[customer+"/"+batch]
	f.mu.Unlock()
	if !ok {
		return nil, &partnercenter.Error{StatusCode: 404, Code: "600", Description: "not found"}
	}
	return fn(ctx)
}

// ThrottledUntil reports the hold set with Hold.
func (f *FakeSource) ThrottledUntil() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heldUntil
}

// Hold sets what ThrottledUntil reports.
func (f *FakeSource) Hold(until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heldUntil = until
}

// ReadStamp reports the stamp set with SetStamp.
func (f *FakeSource) ReadStamp() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stamp
}

// SetStamp sets what ReadStamp reports.
func (f *FakeSource) SetStamp(stamp string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stamp = stamp
}
