package waitcmd

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/plural"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// redrawEvery is how often the live line is redrawn between reads, so
// that its elapsed time moves.
const redrawEvery = time.Second

// holdEnd is the end of the hold after a 429, shown on the progress line.
type holdEnd struct{ until time.Time }

// progressText says where the wait stands, without the elapsed time:
// the status and the devices per status of the last read, and the last
// read's error if it failed.
func progressText(last *partnercenter.Batch, lastErr error, failures, maxFailures int, hold *holdEnd) string {
	var b strings.Builder
	if last == nil {
		b.WriteString("not read yet")
	} else {
		b.WriteString(last.Status.String())
		if raw := unknownRaw(last); raw != "" {
			fmt.Fprintf(&b, " (%q)", clean(raw))
		}
		b.WriteString(", ")
		b.WriteString(deviceText(last.Devices))
	}
	switch {
	case lastErr == nil:
	case hold != nil:
		if hold.until.IsZero() {
			b.WriteString("; throttled by Partner Center (HTTP 429)")
		} else {
			fmt.Fprintf(&b, "; throttled by Partner Center (HTTP 429) until %s", hold.until.UTC().Format(time.RFC3339))
		}
	default:
		fmt.Fprintf(&b, "; read failed (%d of %d): %s", failures, maxFailures, clean(lastErr.Error()))
	}
	return b.String()
}

// deviceText reads like "10 devices: 3 finished, 7 processing".
func deviceText(d partnercenter.DeviceCounts) string {
	total := d.Total()
	if total == 0 {
		return "no devices yet"
	}
	var parts []string
	for _, s := range partnercenter.Statuses {
		if d[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", d[s], s))
		}
	}
	return fmt.Sprintf("%s: %s", deviceCount(total), strings.Join(parts, ", "))
}

// deviceCount reads like "1 device", "3 devices".
func deviceCount(n int) string { return plural.Count(n, "device", "devices") }

// elapsedText rounds to the second: "1m5s".
func elapsedText(d time.Duration) string {
	return max(d, 0).Round(time.Second).String()
}

// progress shows the progress on stderr: one live line, redrawn in place,
// on a terminal; one line per change otherwise.
type progress struct {
	// mu serialises the redraws of the ticker with the updates.
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	width    int
	text     string
	// drawn is the length in runes of the live line on screen.
	drawn int
}

func newProgress(e env) *progress {
	return &progress{w: e.stderr, terminal: e.terminal, width: e.width}
}

// redrawEvery redraws the live line every d, during reads too, with the
// elapsed time elapsed returns, until the returned function is called.
// Off a terminal it does nothing.
func (p *progress) redrawEvery(d time.Duration, elapsed func() time.Duration) (stop func()) {
	if !p.terminal {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.redraw(elapsed())
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// update shows text: on a terminal at once, elsewhere only if it changed.
func (p *progress) update(text string, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := text != p.text
	p.text = text
	if p.terminal {
		p.redrawLocked(elapsed)
		return
	}
	if changed {
		fmt.Fprintf(p.w, "[%s] %s\n", elapsedText(elapsed), text)
	}
}

// redraw draws the live line again: a carriage return, the line cut to
// the terminal's width, and blanks over what is left of a longer line
// before it. No escape sequences, so that a Windows console without
// virtual terminal processing shows it too.
func (p *progress) redraw(elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.redrawLocked(elapsed)
}

func (p *progress) redrawLocked(elapsed time.Duration) {
	if !p.terminal || p.text == "" {
		return
	}
	line := fmt.Sprintf("[%s] %s", elapsedText(elapsed), p.text)
	if p.width > 1 {
		line = cut(line, p.width-1) // The last column would wrap on some terminals.
	}
	n := utf8.RuneCountInString(line)
	pad := max(p.drawn-n, 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	if pad > 0 {
		// Back over the blanks, so that the cursor ends after the line.
		fmt.Fprint(p.w, "\r"+line)
	}
	p.drawn = n
}

// finish ends the live line, so that what follows starts on a line of its
// own.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.drawn > 0 {
		fmt.Fprintln(p.w)
		p.drawn = 0
	}
}

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// clean replaces control characters in text that came from Partner
// Center (serial numbers, descriptions, error messages), so that it
// cannot move the cursor or recolour the terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

// unknownRaw is the status Partner Center sent when the exporter does not
// know it, so that the person waiting sees what it was; "" otherwise.
func unknownRaw(b *partnercenter.Batch) string {
	if b.Status != partnercenter.StatusUnknown || strings.EqualFold(strings.TrimSpace(b.RawStatus), "unknown") {
		return ""
	}
	return b.RawStatus
}
