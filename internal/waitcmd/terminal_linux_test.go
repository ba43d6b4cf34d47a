package waitcmd

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// TestTerminalDetection: a pseudo-terminal is a terminal, with its width;
// a pipe, a file and a buffer are not.
func TestTerminalDetection(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 60}); err != nil {
		t.Fatal(err)
	}
	check(t, "pty is a terminal", isTerminal(tty), true)
	check(t, "pty width", terminalWidth(tty), 60)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check(t, "pipe is a terminal", isTerminal(w), false)
	check(t, "file is a terminal", isTerminal(f), false)
	check(t, "buffer is a terminal", isTerminal(&bytes.Buffer{}), false)
	check(t, "pipe width", terminalWidth(w), 0)
}

// TestOutputOnATerminal: on a pseudo-terminal the progress is one line,
// redrawn in place with carriage returns, ended once before the summary;
// on a pipe it is one line per change (TestFinished).
func TestOutputOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	screen := make(chan string, 1)
	go func() {
		// Reading ends with an error once the terminal side is closed.
		data, _ := io.ReadAll(ptmx)
		screen <- string(data)
	}()

	srv := fake(t)
	script(srv,
		batch("queued"),
		batch("processing", devices("finished", 1), devices("processing", 2)),
		batch("finished", devices("finished", 3)))
	var stdout syncBuffer
	code := run(context.Background(), testOptions(writeConfig(t, srv, "")), env{
		stdout: &stdout, stderr: tty, sigs: make(chan os.Signal, 1), now: fixedNow,
		terminal: isTerminal(tty), width: terminalWidth(tty),
	})
	tty.Close()
	out := <-screen
	check(t, "exit status", code, ExitFinished)

	// The terminal turns "\n" into "\r\n": the only line end is the one
	// that ends the live line.
	body, ok := strings.CutSuffix(out, "\r\n")
	if !ok || strings.Contains(body, "\n") {
		t.Fatalf("the progress is not one line ended once:\n%q", out)
	}
	// What the line showed, in order, each drawing once (a redraw tick
	// may draw the same text again).
	var shown []string
	for drawn := range strings.SplitSeq(body, "\r") {
		drawn = strings.TrimRight(drawn, " ")
		if drawn != "" && (len(shown) == 0 || shown[len(shown)-1] != drawn) {
			shown = append(shown, drawn)
		}
	}
	check(t, "lines shown", strings.Join(shown, "|"),
		"[0s] queued, no devices yet|[0s] processing, 3 devices: 2 processing, 1 finished|[0s] finished, 3 devices: 3 finished")
	if !strings.HasSuffix(stdout.String(), "result: finished (exit status 0)\n") {
		t.Errorf("summary:\n%s", stdout.String())
	}
}
