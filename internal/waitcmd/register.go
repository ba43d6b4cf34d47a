package waitcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// intakePath is the path of the exporter's intake under its base URL.
const intakePath = "/api/v1/batches"

const (
	// registerAttempts bounds the tries when the intake cannot be reached
	// or answers 429 or 5xx.
	registerAttempts = 3
	// registerTimeout bounds one request to the intake.
	registerTimeout = 30 * time.Second
	// maxIntakeAnswer is how much of the intake's answer is read.
	maxIntakeAnswer = 1 << 20
	// maxShownAnswer is how much of a refusal's body an error shows.
	maxShownAnswer = 300
)

// registration hands the batch to a running exporter's intake, so that
// the exporter tracks it whether or not the pipeline goes on waiting.
type registration struct {
	endpoint *url.URL
	token    string
	http     *http.Client
}

// newRegistration checks --register and --register.token-file and reads
// the token, once: the command is short-lived.
func newRegistration(rawURL, tokenFile string) (*registration, error) {
	switch {
	case rawURL == "":
		return nil, errors.New("--register.token-file needs --register")
	case tokenFile == "":
		return nil, errors.New("--register needs --register.token-file")
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		// url.Parse's error would repeat the URL, which may carry a
		// password.
		return nil, errors.New("--register: not an http or https URL with a host")
	}
	if !partnercenter.PlainHTTPAllowed(u) {
		return nil, fmt.Errorf("--register %s: must be https, so that the token is not sent in clear (plain http only on a loopback address)", u.Redacted())
	}
	u.RawQuery, u.Fragment = "", ""
	if p := strings.TrimRight(u.Path, "/"); !strings.HasSuffix(p, intakePath) {
		u.Path = p + intakePath
		u.RawPath = ""
	}
	data, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--register.token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return nil, fmt.Errorf("--register.token-file %s is empty", tokenFile)
	case strings.ContainsAny(token, " \t\r\n"):
		return nil, fmt.Errorf("--register.token-file %s holds more than one word; it must hold the token alone", tokenFile)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	return &registration{
		endpoint: u,
		token:    token,
		http: &http.Client{
			Transport: t,
			Timeout:   registerTimeout,
			// A redirect is answered as it is: following it could hand
			// the token to another server.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// intakeError is a registration that failed; usage says whether it was
// refused (the URL or the token is wrong) rather than not answered.
type intakeError struct {
	msg   string
	usage bool
}

func (e *intakeError) Error() string { return e.msg }

// register posts the batch as one batch-file line and reports the exit
// status to stop with when ok is false.
func (r *registration) register(ctx context.Context, b batchfiles.Batch, e env) (code int, ok bool) {
	pause := e.registerPause
	if pause <= 0 {
		pause = time.Second
	}
	var err error
	for attempt := 1; attempt <= registerAttempts; attempt++ {
		var msg string
		msg, err = r.post(ctx, b)
		if err == nil {
			fmt.Fprintf(e.stderr, "partnercenter_exporter wait: %s\n", msg)
			return 0, true
		}
		var refused *intakeError
		if ctx.Err() != nil || errors.As(err, &refused) && refused.usage || attempt == registerAttempts {
			break
		}
		timer := time.NewTimer(pause * time.Duration(attempt))
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	var sig interrupted
	switch {
	case errors.As(context.Cause(ctx), &sig):
		fmt.Fprintf(e.stderr, "partnercenter_exporter wait: interrupted while registering the batch\n")
		return sig.exitCode(), false
	case ctx.Err() != nil:
		fmt.Fprintf(e.stderr, "partnercenter_exporter wait: timed out while registering the batch\n")
		return ExitIncomplete, false
	}
	fmt.Fprintf(e.stderr, "partnercenter_exporter wait: register the batch with %s: %v\n", r.endpoint.Redacted(), err)
	var refused *intakeError
	if errors.As(err, &refused) && refused.usage {
		return ExitUsage, false
	}
	return ExitIncomplete, false
}

// post sends one request: the batch as a batch-file line, the token as a
// bearer token. It accepts 201 (registered) and 200 (already tracked)
// with a JSON body.
func (r *registration) post(ctx context.Context, b batchfiles.Batch) (string, error) {
	body := b.CustomerID + " " + b.TrackingID + "\n"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint.String(), strings.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", pcclient.UserAgent())
	resp, err := r.http.Do(req)
	if err != nil {
		// The error names the URL, which is already in the message.
		if urlErr, ok := errors.AsType[*url.Error](err); ok {
			err = urlErr.Err
		}
		return "", fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxIntakeAnswer))
	if err != nil {
		return "", fmt.Errorf("HTTP %d, reading the answer: %w", resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mediaType != "application/json" || !json.Valid(answer) {
			return "", &intakeError{usage: true, msg: fmt.Sprintf("HTTP %d without a JSON answer: is this an exporter's intake?", resp.StatusCode)}
		}
		if resp.StatusCode == http.StatusOK {
			return "the exporter at " + r.endpoint.Host + " already tracks the batch", nil
		}
		return "registered the batch with the exporter at " + r.endpoint.Host, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, excerpt(answer))
	}
	return "", &intakeError{usage: true, msg: fmt.Sprintf("refused with HTTP %d: %s", resp.StatusCode, excerpt(answer))}
}

// excerpt is the start of an answer on one line.
func excerpt(body []byte) string {
	s := clean(strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "?")), " "))
	if s == "" {
		return "(empty answer)"
	}
	return cut(s, maxShownAnswer)
}
