//go:build unix

package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Process is a program a test started and must stop. It runs in its own
// process group, so that stopping it also stops the helpers it started
// (Chromium's zygote and renderers); the group ID is the child's PID.
type Process struct {
	// Name names the process in failure messages.
	Name string
	Cmd  *exec.Cmd
	// logPath holds its output when StartLogged started it.
	logPath string
	exited  chan struct{}
	// err and state are set when exited is closed.
	err   error
	state *os.ProcessState
}

// StartProcess starts cmd in a process group of its own; the test's
// cleanup stops the group.
func StartProcess(t *testing.T, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	return start(t, name, cmd, "", nil)
}

// StartLogged starts bin with its output in dir/<name>.log, which Output
// reads; the test's cleanup stops it.
func StartLogged(t *testing.T, dir, name, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Stop ends it, not a context: it must outlive the call.
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	return start(t, name, cmd, logPath, logFile)
}

func start(t *testing.T, name string, cmd *exec.Cmd, logPath string, logFile *os.File) *Process {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			_ = logFile.Close()
		}
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		if logFile != nil {
			_ = logFile.Close()
		}
		close(p.exited)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is Wait's error, once Exited is closed.
func (p *Process) Err() error { return p.err }

// Wait waits for the process to exit, at most d; it reports whether it did.
func (p *Process) Wait(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Terminate sends SIGTERM to the process and waits, within ctx, for its
// exit code.
func (p *Process) Terminate(ctx context.Context, t *testing.T) int {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %s (pid %d): %v", p.Name, p.Cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return p.state.ExitCode()
	case <-ctx.Done():
		t.Fatalf("%s (pid %d) did not stop after SIGTERM\n%s", p.Name, p.Cmd.Process.Pid, p.Output())
		return -1
	}
}

// Stop sends SIGTERM to the process group, waits, then SIGKILLs whatever
// is left. Calling it after the process exited still clears the group.
func (p *Process) Stop() {
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM) // ESRCH: nothing left to stop
	deadline := time.Now().Add(stopGrace)
	for time.Now().Before(deadline) && groupAlive(pgid) {
		time.Sleep(50 * time.Millisecond)
	}
	if groupAlive(pgid) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	p.Wait(stopGrace)
}

func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// Output is the last 4000 bytes of the log of a process StartLogged
// started.
func (p *Process) Output() string {
	if p.logPath == "" {
		return "(output not logged)"
	}
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	const tail = 4000
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	return string(data)
}
