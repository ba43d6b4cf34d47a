// Package waitcmd is the exporter's `wait` command: a pipeline runs it
// right after uploading a batch of Autopilot devices, and its exit status
// says whether the devices registered.
//
// It reads the batch with the daemon's own client (internal/pcclient) and
// configuration, every --interval, until the batch is finished, until
// --timeout, or until reads keep failing, and prints what it saw: a live
// progress line on a terminal or one line per change otherwise (both on
// stderr), then a summary or, with --output=json, the final state as JSON
// (on stdout).
package waitcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Name is the command's name on the command line.
const Name = "wait"

// The exit statuses of the command.
const (
	// ExitFinished: the batch finished, every device without an error
	// (or only with ignored ones).
	ExitFinished = 0
	// ExitFinishedWithErrors: the batch finished and some devices failed.
	ExitFinishedWithErrors = 1
	// ExitIncomplete: the timeout passed, the status is unknown, or reads
	// keep failing; nobody knows yet whether the devices registered.
	ExitIncomplete = 2
	// ExitUsage: the command line or the configuration is wrong.
	ExitUsage = 3
	// ExitInterrupted is 128+SIGINT, as a shell reports it.
	ExitInterrupted = 130
	// ExitTerminated is 128+SIGTERM, for a cancelled pipeline job.
	ExitTerminated = 143
)

// Defaults of the command line.
const (
	DefaultInterval        = 15 * time.Second
	DefaultTimeout         = 30 * time.Minute
	DefaultMaxReadFailures = 5
	// maxBackoff caps the pause after failed reads.
	maxBackoff = 5 * time.Minute
)

// Options is the parsed command line.
type Options struct {
	ConfigFile string
	// Batch is what a batch-file line takes: a Location path, the full
	// URL, "customer batch" or "customer,batch", split into arguments.
	Batch    []string
	Timeout  time.Duration
	Interval time.Duration
	// Output is "text" or "json".
	Output string
	// IgnoreErrorCodes are device error codes that count as success.
	IgnoreErrorCodes []string
	// MaxReadFailures is how many reads in a row may fail before the
	// command gives up.
	MaxReadFailures   int
	Register          string
	RegisterTokenFile string
}

// Command is the `wait` command registered on a kingpin application.
type Command struct {
	opts       Options
	configFile *string
}

// AddCommand registers the command on app. configFile is the
// application's --config.file, which the command shares with the daemon.
func AddCommand(app *kingpin.Application, configFile *string) *Command {
	c := &Command{configFile: configFile}
	cmd := app.Command(Name, "Wait for a batch to finish; the exit status says whether its devices registered "+
		"(0 finished, 1 finished with errors, 2 timeout, unknown status or failing reads, 3 usage or configuration error, 130 interrupted).")
	cmd.Arg("batch", `The batch, as a batch-file line takes it: the upload's Location (path or URL), or "<customer GUID> <batch GUID>".`).
		StringsVar(&c.opts.Batch)
	cmd.Flag("timeout", "Give up (exit status 2) after this long.").Default(DefaultTimeout.String()).DurationVar(&c.opts.Timeout)
	cmd.Flag("interval", "Time between two reads of the batch.").Default(DefaultInterval.String()).DurationVar(&c.opts.Interval)
	cmd.Flag("output", "What to print on stdout at the end: a text summary, or the final state as JSON. One of: [text, json]").
		Default("text").EnumVar(&c.opts.Output, "text", "json")
	cmd.Flag("ignore-error-codes", "Device error codes that count as success, such as 806 (ZtdDeviceAlreadyAssigned) when an upload is repeated. Repeatable, or comma-separated.").
		StringsVar(&c.opts.IgnoreErrorCodes)
	cmd.Flag("max-read-failures", "Give up (exit status 2) after this many failed reads in a row; HTTP 429 answers do not count.").
		Default(fmt.Sprint(DefaultMaxReadFailures)).IntVar(&c.opts.MaxReadFailures)
	cmd.Flag("register", "Base URL of a running exporter whose intake (POST /api/v1/batches) is handed the batch first.").
		PlaceHolder("URL").StringVar(&c.opts.Register)
	cmd.Flag("register.token-file", "File holding the bearer token of the exporter's intake.").
		PlaceHolder("FILE").StringVar(&c.opts.RegisterTokenFile)
	return c
}

// Run runs the command and returns its exit status. SIGINT and SIGTERM
// arrive on sigs, so that tests can send them.
func (c *Command) Run(stdout, stderr io.Writer, sigs chan os.Signal) int {
	opts := c.opts
	opts.ConfigFile = *c.configFile
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return run(context.Background(), opts, env{
		stdout: stdout, stderr: stderr, sigs: sigs, now: time.Now,
		terminal: isTerminal(stderr), width: terminalWidth(stderr),
	})
}

// env is what run needs from the world, injectable for tests.
type env struct {
	stdout, stderr io.Writer
	sigs           <-chan os.Signal
	now            func() time.Time
	// terminal says whether stderr is a terminal: a live progress line
	// then, one line per change otherwise. width is its width in columns
	// (0 when unknown).
	terminal bool
	width    int
	// registerPause is the pause between two registration attempts;
	// 0 means one second.
	registerPause time.Duration
}

// usageError is a mistake on the command line or in the configuration.
func usageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "partnercenter_exporter wait: "+format+"\n", args...)
	return ExitUsage
}

func run(ctx context.Context, opts Options, e env) int {
	batch, err := parseBatchArgs(opts.Batch)
	if err != nil {
		return usageError(e.stderr, "%v", err)
	}
	switch {
	case opts.Interval <= 0:
		return usageError(e.stderr, "--interval must be positive, not %v", opts.Interval)
	case opts.Timeout <= 0:
		return usageError(e.stderr, "--timeout must be positive, not %v", opts.Timeout)
	case opts.MaxReadFailures < 1:
		return usageError(e.stderr, "--max-read-failures must be at least 1, not %d", opts.MaxReadFailures)
	}
	ignore, err := parseCodes(opts.IgnoreErrorCodes)
	if err != nil {
		return usageError(e.stderr, "--ignore-error-codes: %v", err)
	}
	var reg *registration
	if opts.Register != "" || opts.RegisterTokenFile != "" {
		reg, err = newRegistration(opts.Register, opts.RegisterTokenFile)
		if err != nil {
			return usageError(e.stderr, "%v", err)
		}
	}
	cfg, err := config.Load(opts.ConfigFile)
	if err != nil {
		return usageError(e.stderr, "%v", err)
	}
	httpc, err := pcclient.NewHTTPClient(cfg.PartnerCenter.HTTPClient)
	if err != nil {
		return usageError(e.stderr, "%s: %v", opts.ConfigFile, err)
	}
	client, err := pcclient.New(cfg, httpc, partnercenter.NopObserver{}, nil)
	if err != nil {
		return usageError(e.stderr, "%s: %v", opts.ConfigFile, err)
	}

	// The deadline ends an answer still being read too; a signal ends
	// everything at once.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, opts.Timeout, errTimeout)
	defer cancelTimeout()
	stopSignals := make(chan struct{})
	defer close(stopSignals)
	go func() {
		select {
		case sig := <-e.sigs:
			cancel(interrupted{sig})
		case <-stopSignals:
		}
	}()

	if reg != nil {
		if code, ok := reg.register(ctx, batch, e); !ok {
			return code
		}
	}
	w := &waiter{
		client: client, batch: batch, opts: opts, ignore: ignore, e: e,
		readTimeout: 2*cfg.PartnerCenter.RequestTimeout + time.Second,
		start:       e.now(),
	}
	w.progress = newProgress(e)
	out := w.wait(ctx)
	w.progress.finish()
	if opts.Output == "json" {
		if err := writeJSON(e.stdout, out); err != nil {
			fmt.Fprintf(e.stderr, "partnercenter_exporter wait: write JSON: %v\n", err)
		}
	} else {
		writeSummary(e.stdout, out)
	}
	return out.exitCode
}

// errTimeout is the cause of the --timeout deadline.
var errTimeout = errors.New("timeout")

// interrupted is the cause of a cancellation by a signal.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

func (i interrupted) exitCode() int {
	if i.sig == syscall.SIGTERM {
		return ExitTerminated
	}
	return ExitInterrupted
}

// parseBatchArgs reads the batch the way a batch-file line is read: one
// argument (a Location, a URL or "customer,batch"), or two (customer and
// batch).
func parseBatchArgs(args []string) (batchfiles.Batch, error) {
	switch len(args) {
	case 0:
		return batchfiles.Batch{}, errors.New(`no batch given: pass the upload's Location, or "<customer GUID> <batch GUID>"`)
	case 1, 2:
	default:
		return batchfiles.Batch{}, fmt.Errorf("%d arguments: expected the upload's Location, or a customer GUID and a batch GUID", len(args))
	}
	for _, a := range args {
		// A '#' would start a comment in a batch file; on the command
		// line it would silently drop the rest.
		if strings.TrimSpace(a) == "" || strings.HasPrefix(strings.TrimSpace(a), "#") {
			return batchfiles.Batch{}, errors.New("an empty argument where the batch was expected")
		}
	}
	b, ok, err := batchfiles.ParseLine(strings.Join(args, " "))
	if err != nil {
		return batchfiles.Batch{}, fmt.Errorf("batch: %w", err)
	}
	if !ok {
		return batchfiles.Batch{}, errors.New("no batch given")
	}
	return b, nil
}

// parseCodes reads --ignore-error-codes: repeatable, each possibly a
// comma-separated list.
func parseCodes(values []string) (map[string]bool, error) {
	codes := map[string]bool{}
	for _, v := range values {
		for code := range strings.SplitSeq(v, ",") {
			code = strings.TrimSpace(code)
			if code == "" {
				continue
			}
			if strings.ContainsAny(code, " \t\r\n") {
				return nil, fmt.Errorf("%q is not an error code", code)
			}
			codes[code] = true
		}
	}
	return codes, nil
}
