//go:build unix

package testkit

import (
	"syscall"
	"time"
)

// ProcessCPUTime is the user and system time of the whole process (the
// garbage collector's included), so that benchmarks on a shared machine
// can report the work done, not the wait. ok is false where it cannot be
// read.
func ProcessCPUTime() (cpu time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
