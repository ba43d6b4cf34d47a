//go:build !unix

package testkit

import "time"

// ProcessCPUTime cannot be read here: ok is false.
func ProcessCPUTime() (cpu time.Duration, ok bool) { return 0, false }
