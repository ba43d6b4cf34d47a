//go:build unix

package storage_test

import (
	"syscall"
	"time"
)

// processCPUTime is the user and system time of the whole process, so that
// benchmarks on a shared machine can report the work done, not the wait.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
