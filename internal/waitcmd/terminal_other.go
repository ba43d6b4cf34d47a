//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || zos || windows)

package waitcmd

// Elsewhere (plan9, js, wasip1) nothing is taken for a terminal: the
// command prints one line per change.
func fdIsTerminal(uintptr) bool { return false }

func fdWidth(uintptr) int { return 0 }
