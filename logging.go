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

// newLogger builds the application's go-kit logger writing to w. base is
// the same logger without the timestamp and caller, for the slog bridge,
// which adds its own.
func newLogger(w io.Writer, lvl, format string) (logger, base log.Logger, err error) {
	switch format {
	case "logfmt":
		base = log.NewLogfmtLogger(log.NewSyncWriter(w))
	case "json":
		base = log.NewJSONLogger(log.NewSyncWriter(w))
	default:
		return nil, nil, fmt.Errorf("unknown log format %q", format)
	}
	opt, err := levelOption(lvl)
	if err != nil {
		return nil, nil, err
	}
	base = level.NewFilter(base, opt)
	return log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller), base, nil
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
// go-kit output as the rest of the exporter. base must carry no timestamp
// or caller: the bridge adds both from the slog record. The go-kit filter
// decides what is written, so the bridge passes every level.
func slogBridge(base log.Logger) *slog.Logger {
	var all slog.LevelVar
	all.Set(slog.LevelDebug)
	return slog.New(sloggokit.NewGoKitHandler(base, &all))
}
