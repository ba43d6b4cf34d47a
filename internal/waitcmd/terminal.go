package waitcmd

import "io"

// fder is an *os.File, or anything else with a file descriptor.
type fder interface{ Fd() uintptr }

// isTerminal reports whether w is a terminal. It asks the terminal
// driver through golang.org/x/sys (golang.org/x/term is not in the
// module graph), so that a file or a pipe is never taken for one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(fder)
	return ok && fdIsTerminal(f.Fd())
}

// terminalWidth is w's width in columns, 0 when unknown.
func terminalWidth(w io.Writer) int {
	f, ok := w.(fder)
	if !ok {
		return 0
	}
	return fdWidth(f.Fd())
}
