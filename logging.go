package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	sloggokit "github.com/tjhop/slog-gokit"
)

// logLevels and logFormats are the values --log.level and --log.format take.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"logfmt", "json"}
)

// newLogger builds the application's go-kit logger writing to w.
func newLogger(w io.Writer, lvl, format string) (log.Logger, error) {
	var logger log.Logger
	switch format {
	case "logfmt":
		logger = log.NewLogfmtLogger(log.NewSyncWriter(w))
	case "json":
		logger = log.NewJSONLogger(log.NewSyncWriter(w))
	default:
		return nil, fmt.Errorf("unknown log format %q", format)
	}
	opt, err := levelOption(lvl)
	if err != nil {
		return nil, err
	}
	logger = level.NewFilter(logger, opt)
	return log.With(logger, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller), nil
}

func levelOption(lvl string) (level.Option, error) {
	switch lvl {
	case "debug":
		return level.AllowDebug(), nil
	case "info":
		return level.AllowInfo(), nil
	case "warn":
		return level.AllowWarn(), nil
	case "error":
		return level.AllowError(), nil
	}
	return nil, fmt.Errorf("unknown log level %q", lvl)
}

// slogBridge gives exporter-toolkit, which logs through log/slog, the same
// go-kit logger as the rest of the exporter. The go-kit filter decides what
// is written, so the bridge passes every level.
func slogBridge(logger log.Logger) *slog.Logger {
	var all slog.LevelVar
	all.Set(slog.LevelDebug)
	return slog.New(sloggokit.NewGoKitHandler(logger, &all))
}
