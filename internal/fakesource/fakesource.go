// Package fakesource is a scripted Partner Center for the tests of the
// reader and the collector. It imports only partnercenter, so that the
// in-package tests of batchstate and collector can both use it.
package fakesource

import (
	"context"
	"sync"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Source is a scripted Partner Center: it answers each batch as set, 404 for any other, counts the
// calls per batch, and reports the hold and read stamp it is given. It
// has the methods of batchstate.Source without importing it.
type Source struct {
	mu        sync.Mutex
	answers   map[string]func(ctx context.Context) (*partnercenter.Batch, error)
	calls     map[string]int
	heldUntil time.Time
	stamp     string
}

// New returns a Source that knows no batch.
func New() *Source {
	return &Source{answers: map[string]func(context.Context) (*partnercenter.Batch, error){}, calls: map[string]int{}}
}

// Set makes fn the answer for one batch.
func (f *Source) Set(customer, batch string, fn func(ctx context.Context) (*partnercenter.Batch, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[customer+"/"+batch] = fn
}

// SetBatch makes b the answer for one batch.
func (f *Source) SetBatch(customer, batch string, b *partnercenter.Batch) {
	f.Set(customer, batch, func(context.Context) (*partnercenter.Batch, error) { return b, nil })
}

// SetErr makes err the answer for one batch.
func (f *Source) SetErr(customer, batch string, err error) {
	f.Set(customer, batch, func(context.Context) (*partnercenter.Batch, error) { return nil, err })
}

// Count is how often one batch was asked for.
func (f *Source) Count(customer, batch string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[customer+"/"+batch]
}

// TotalCalls is how often any batch was asked for.
func (f *Source) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// BatchStatus answers as set, or 404 for a batch never set.
func (f *Source) BatchStatus(ctx context.Context, customer, batch string) (*partnercenter.Batch, error) {
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
func (f *Source) ThrottledUntil() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heldUntil
}

// Hold sets what ThrottledUntil reports.
func (f *Source) Hold(until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heldUntil = until
}

// ReadStamp reports the stamp set with SetStamp.
func (f *Source) ReadStamp() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stamp
}

// SetStamp sets what ReadStamp reports.
func (f *Source) SetStamp(stamp string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stamp = stamp
}
