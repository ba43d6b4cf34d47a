package testkit

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FamilyValues maps a rendered label set to its value.
type FamilyValues map[string]float64

// ParseMetrics parses an exposition into values by family and label set,
// and fails the test on a sample that carries a timestamp.
func ParseMetrics(t *testing.T, text string) map[string]*FamilyValues {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	out := map[string]*FamilyValues{}
	for name, f := range families {
		values := FamilyValues{}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				v = m.GetUntyped().GetValue()
			}
			values[strings.Join(labels, ",")] = v
			if m.TimestampMs != nil {
				t.Errorf("%s carries a sample timestamp", name)
			}
		}
		out[name] = &values
	}
	return out
}

// Value is the value of name{labels}; the test fails without one.
func Value(t *testing.T, metrics map[string]*FamilyValues, name, labels string) float64 {
	t.Helper()
	f, ok := metrics[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
	v, ok := (*f)[labels]
	if !ok {
		t.Fatalf("%s{%s} missing; have %v", name, labels, *f)
	}
	return v
}

// BatchLabels renders the labels of a batch series as ParseMetrics does.
func BatchLabels(customer, batch string) string {
	return "batch_tracking_id=" + batch + ",customer_id=" + customer
}
