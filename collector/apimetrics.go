package collector

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// APIMetrics counts the client's own traffic across scrapes. It implements
// partnercenter.Observer.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	throttle prometheus.Counter
	tokens   *prometheus.CounterVec
	// refreshWrites counts write-backs of rotated refresh tokens.
	refreshWrites *prometheus.CounterVec
}

var _ partnercenter.Observer = (*APIMetrics)(nil)

// NewAPIMetrics creates the traffic metrics and registers them on reg.
func NewAPIMetrics(reg prometheus.Registerer) *APIMetrics {
	m := &APIMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "requests_total",
			Help: "Requests sent to the Partner Center API, by HTTP status code (\"error\" when no response arrived).",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help:    "Duration of Partner Center API requests, including reading the response body.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		throttle: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "throttled_total",
			Help: "Partner Center API answers with HTTP 429 (too many requests).",
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "token", Name: "requests_total",
			Help: "Access token requests, by result.",
		}, []string{"result"}),
		refreshWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "token", Name: "refresh_token_writes_total",
			Help: "Attempts to write a rotated refresh token back to auth.refresh_token_file, by result; after a failure the file holds a spent refresh token until a write succeeds.",
		}, []string{"result"}),
	}
	// Both results exist from the start, so that rate() and alerts on
	// failures work before the first failure.
	for _, result := range []string{"success", "failure"} {
		m.tokens.WithLabelValues(result)
		m.refreshWrites.WithLabelValues(result)
	}
	reg.MustRegister(m.requests, m.duration, m.throttle, m.tokens, m.refreshWrites)
	return m
}

// APIRequest counts one request; code 0 means no response arrived.
func (m *APIMetrics) APIRequest(code int, d time.Duration) {
	label := "error"
	if code > 0 {
		label = strconv.Itoa(code)
	}
	m.requests.WithLabelValues(label).Inc()
	m.duration.Observe(d.Seconds())
}

// Throttled counts one 429 answer.
func (m *APIMetrics) Throttled() { m.throttle.Inc() }

// TokenRequest counts one token request.
func (m *APIMetrics) TokenRequest(result string) { m.tokens.WithLabelValues(result).Inc() }

// RefreshTokenWrite counts one write-back of a rotated refresh token.
func (m *APIMetrics) RefreshTokenWrite(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.refreshWrites.WithLabelValues(result).Inc()
}
