// Package batchfiles reads the batch files that upload scripts append to,
// and watches them so that a batch appended while the exporter runs is
// monitored without a reload.
//
// # File format
//
// A batch file is UTF-8 text (a byte order mark at the start is allowed,
// and so are Windows CRLF line endings) with one Autopilot batch per line,
// in any of these forms:
//
//	<customer GUID> <batch tracking GUID>
//	<customer GUID>,<batch tracking GUID>
//	/customers/<customer GUID>/batchJobStatus/<batch tracking GUID>
//	/v1/customers/<customer GUID>/batchJobStatus/<batch tracking GUID>
//	https://<any host>/v1/customers/<customer GUID>/batchJobStatus/<batch tracking GUID>
//
// The first two are a customer ID and a batch tracking ID separated by
// spaces or tabs, or by one comma (as a two-column CSV export has them;
// spaces around the comma are allowed). The others are the Location header
// that Partner Center answers an upload with, as it is, with a /v1 prefix,
// or as a full https URL with any host; a query string or fragment on a
// location is ignored, a trailing slash is not allowed. Path segments match
// case-insensitively (batchjobstatus, BatchJobStatus); IDs are GUIDs in the
// 8-4-4-4-12 form and are lower-cased. So an upload script only needs
//
//	echo "$location" >> uploads.txt
//	Add-Content -Encoding utf8 uploads.txt $location
//
// A # starts a comment when it begins the line or follows a space or tab;
// comments, indented comments, blank lines and surrounding whitespace are
// ignored. A line longer than 4096 bytes is invalid. A file larger than
// 16 MiB (MaxFileBytes) is not read at all, and reported as an unreadable
// file is: it is more likely a log that a broad glob matched than a year
// of uploads (about 5 MiB for a large partner), and parsing it at every
// re-scan would cost seconds of CPU.
//
// A last line that does not end in a newline is not read at once: an
// upload script may be half-way through writing it. It counts when its
// newline arrives, or, for editors and tools that never write one
// (Notepad, Set-Content -NoNewline), once it has stayed unchanged from one
// periodic re-scan of the Watcher to the next. The same
// batch listed twice counts once, at its first line; the repeat is not an
// error, because a script that retries may append a location again. A
// UTF-16 file (Windows PowerShell 5.1's >> writes one) is refused as a
// whole, with an error that says to write UTF-8.
//
// An invalid line is reported with its file, line number and a reason, and
// skipped; the file's other lines still count. The reason never repeats
// any of the line: a broad glob may match a key or a secret file, and the
// reports reach the log, /config and --config.check.
//
// # Many files
//
// Files are named by globs (filepath.Glob syntax; a relative glob is
// resolved against the configuration file's directory). As in a shell, a
// wildcard does not match a name that starts with a dot, so editor swap
// files and the ..data directories of a Kubernetes ConfigMap volume are
// not read. A glob that matches nothing is not an error. Batches are merged
// across files in path order; a batch in several files counts once, at its
// first file and line. A file that cannot be read keeps the batches of its
// last successful read and reports its error; a file that no longer exists
// or no longer matches drops its batches.
//
// # Watching
//
// A Watcher watches the directories of the globs with fsnotify (not the
// files, which editors and ConfigMap volumes replace) and re-scans every
// file on every burst of events, and also periodically, for filesystems
// that send no events (network shares, ConfigMap volumes). Only the
// periodic re-scans decide that an unterminated last line is finished:
// scans after events come at any moment, possibly between two writes of
// the same line. An invalid line
// is logged with its file and line number, and an unreadable file with its
// error, once per change of the file rather than at every scan.
package batchfiles
