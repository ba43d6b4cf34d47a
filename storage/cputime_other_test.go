//go:build !unix

package storage_test

import "time"

func processCPUTime() (time.Duration, bool) { return 0, false }
