package partnercentertest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
)

// Fault breaks an answer on the wire after its status line and headers,
// which are sent as scripted with the Content-Length of the whole body.
type Fault string

// The faults a Response can ask for. Each sends the first half of the body
// (rounded down) before it strikes.
const (
	// FaultReset resets the connection (TCP RST), as a crashing proxy does.
	FaultReset Fault = "reset"
	// FaultTruncate closes the connection normally (TCP FIN), so that the
	// client finds fewer bytes than Content-Length announced.
	FaultTruncate Fault = "truncate"
	// FaultStall sends nothing more, and keeps the connection open, until
	// the client goes away or the Server closes.
	FaultStall Fault = "stall"
)

func (f Fault) valid() bool {
	switch f {
	case "", FaultReset, FaultTruncate, FaultStall:
		return true
	}
	return false
}

// Stream is a body generated while it is sent, so that a test can send far
// more than it could hold in memory. Sending stops as soon as the client
// goes away or the Server closes; such a request counts in AbortedRequests.
type Stream struct {
	// Head is sent first, then Repeat over and over until the body is Size
	// bytes long; the last copy of Repeat is cut short.
	Head   []byte
	Repeat []byte
	Size   int64
	// Chunked leaves Content-Length out (chunked transfer encoding), so
	// that the client learns the size only by reading.
	Chunked bool
}

func (st *Stream) check() error {
	switch {
	case st.Size < int64(len(st.Head)):
		return fmt.Errorf("Stream.Size %d is smaller than its Head (%d bytes)", st.Size, len(st.Head))
	case st.Size > int64(len(st.Head)) && len(st.Repeat) == 0:
		return fmt.Errorf("Stream.Size %d needs a Repeat after its Head", st.Size)
	}
	return nil
}

// streamChunk is about how much one write of a Stream sends.
const streamChunk = 64 << 10

// chunk returns a buffer of whole copies of Repeat, about streamChunk long,
// reused for every write.
func (st *Stream) chunk() []byte {
	copies := max(streamChunk/max(len(st.Repeat), 1), 1)
	buf := make([]byte, 0, copies*len(st.Repeat))
	for range copies {
		buf = append(buf, st.Repeat...)
	}
	return buf
}

// checkScript reports a Response that cannot be sent as asked.
func checkScript(resp Response) error {
	switch {
	case !resp.Fault.valid():
		return fmt.Errorf("unknown Response.Fault %q (want reset, truncate or stall)", resp.Fault)
	case resp.Stream != nil && resp.Fault != "":
		return fmt.Errorf("Response.Fault %q cannot break a Stream", resp.Fault)
	case resp.Stream != nil:
		return resp.Stream.check()
	}
	return nil
}

// write sends a; it reports false when the client went away, or the Server
// closed, before the answer was complete (a fault that strikes as scripted
// is complete).
func (s *Server) write(w http.ResponseWriter, r *http.Request, a answer) bool {
	if a.aborted {
		dropConnection(w)
		return false
	}
	if a.stream == nil && a.fault == "" {
		a.writeWhole(w)
		return true
	}
	h := w.Header()
	maps.Copy(h, a.header)
	if a.stream != nil {
		return s.writeStream(r.Context(), w, a)
	}
	s.writeFault(r.Context(), w, a)
	return true
}

func (s *Server) writeStream(ctx context.Context, w http.ResponseWriter, a answer) bool {
	st := a.stream
	if !st.Chunked {
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size, 10))
	}
	w.WriteHeader(a.status)
	if st.Chunked {
		// Without a flush net/http would add a Content-Length to a
		// short body.
		_ = http.NewResponseController(w).Flush()
	}
	left := st.Size
	send := func(p []byte) bool {
		p = p[:min(int64(len(p)), left)]
		if _, err := w.Write(p); err != nil {
			return false
		}
		left -= int64(len(p))
		return true
	}
	if !send(st.Head) {
		return false
	}
	chunk := st.chunk()
	for left > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-s.closing:
			return false
		default:
		}
		if !send(chunk) {
			return false
		}
	}
	return true
}

// writeFault sends the headers and half the body, then strikes.
func (s *Server) writeFault(ctx context.Context, w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	rc := http.NewResponseController(w)
	// Errors mean the client is gone already, which is what the fault
	// would have brought about anyway.
	_, _ = w.Write(a.body[:len(a.body)/2])
	_ = rc.Flush()
	if a.fault == FaultStall {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		dropHijacked(rc, false)
		return
	}
	dropHijacked(rc, a.fault == FaultReset)
}

// dropHijacked closes the connection under rc, with a TCP RST when reset
// is set. Hijacking after the headers were flushed keeps net/http from
// completing or repairing the answer.
func dropHijacked(rc *http.ResponseController, reset bool) {
	conn, _, err := rc.Hijack()
	if err != nil {
		return // Not HTTP/1: the handler's return ends the stream.
	}
	if tcp, ok := conn.(*net.TCPConn); ok && reset {
		// A zero linger turns Close into an RST; it cannot fail on an
		// open TCP connection in a way that matters here.
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
