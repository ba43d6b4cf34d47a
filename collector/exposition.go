package collector

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
)

// Serve answers one scrape with the metrics of s followed by those of self
// (the exporter's own metrics; nil for none), as promhttp.HandlerFor with
// ContinueOnError would for prometheus.Gatherers{a registry holding s,
// self}: the same negotiation of format and compression, the same headers,
// the same series in the same order. The difference is the cost: the
// series of a settled batch are built and encoded once, the first time a
// scrape asks for them in a format, and written out as they are by every
// later scrape until the batch changes, retires or leaves (see
// exportCache). A scrape of 50,000 settled batches costs writing their
// bytes, not building, checking and sorting 850,000 metrics.
//
// The call site that registered s on a registry of its own and served
// prometheus.Gatherers{thatRegistry, self} calls Serve(w, r, s, self,
// errLog) instead.
func Serve(w http.ResponseWriter, r *http.Request, s *Scrape, self prometheus.Gatherer, errLog promhttp.Logger) {
	serve(w, r, s, self, errLog, expfmt.DefaultAcceptedFormats())
}

// serve is Serve offering the formats accepted (promhttp's
// HandlerOpts.AcceptedFormats): tests offer OpenMetrics too.
func serve(w http.ResponseWriter, r *http.Request, s *Scrape, self prometheus.Gatherer, errLog promhttp.Logger, accepted []expfmt.Format) {
	start := s.now()
	results, retired := s.readBatches()
	now := s.now()
	batches := s.reader.exports.series(results, s.reader.store)

	// Everything else is few series: it goes through a registry as before,
	// and is merged with the batches' families by name below.
	restReg := prometheus.NewRegistry()
	restReg.MustRegister(restCollector{s: s, start: start, retired: retired})
	gatherers := prometheus.Gatherers{restReg}
	if self != nil {
		gatherers = append(gatherers, self)
	}
	rest, err := gatherers.Gather()
	if err != nil {
		if errLog != nil {
			errLog.Println("error gathering metrics:", err)
		}
		if len(rest) == 0 && len(batches) == 0 {
			http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
			return
		}
	}

	format := expfmt.NegotiateAccept(r.Header, accepted...)
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", string(format))
	out, closeOut := compressedWriter(w, r, errLog)
	defer closeOut()

	var filter map[string]bool
	if r.URL != nil {
		if names := r.URL.Query()["name[]"]; len(names) > 0 {
			filter = make(map[string]bool, len(names))
			for _, n := range names {
				filter[n] = true
			}
		}
	}
	e := exposition{
		w: out, format: format, enc: expfmt.NewEncoder(out, format),
		slot: s.reader.exports.slot(format), batches: batches, now: now,
		local: map[*batchSeries]*encodedBatch{},
	}
	if err := e.write(rest, filter); err != nil && errLog != nil {
		errLog.Println("error encoding and sending metric family:", err)
	}
}

// restCollector emits what Collect emits beside the batches' series.
type restCollector struct {
	s       *Scrape
	start   time.Time
	retired int
}

func (c restCollector) Describe(ch chan<- *prometheus.Desc) { c.s.Describe(ch) }

func (c restCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.collectRest(ch, c.start, c.retired)
}

// compressedWriter negotiates the response's compression as promhttp does
// with its default offers (identity and gzip), sets Content-Encoding, and
// returns the writer to encode into and what to call when done.
func compressedWriter(w http.ResponseWriter, r *http.Request, errLog promhttp.Logger) (io.Writer, func()) {
	switch coding := negotiateEncoding(r.Header.Values("Accept-Encoding")); coding {
	case "gzip":
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(w)
		bw := bufio.NewWriterSize(gz, 32<<10)
		return bw, func() { _ = bw.Flush(); _ = gz.Close(); gzipWriters.Put(gz) }
	case "identity":
	default:
		if errLog != nil {
			errLog.Println("error getting writer", fmt.Errorf("content compression format not recognized: %s. Valid formats are: [identity gzip]", coding))
		}
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	return bw, func() { _ = bw.Flush() }
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// negotiateEncoding picks the content coding among identity and gzip from
// the Accept-Encoding values: the highest quality wins, identity on a tie
// or when nothing is acceptable; "" when the best quality is 0. This is
// the rule promhttp applies.
func negotiateEncoding(values []string) string {
	best, bestQ := "identity", -1.0
	specs := parseAcceptEncoding(values)
	for _, offer := range []string{"identity", "gzip"} {
		for _, sp := range specs {
			if sp.q > bestQ && (sp.value == "*" || sp.value == offer) {
				best, bestQ = offer, sp.q
			}
		}
	}
	if bestQ == 0 {
		return ""
	}
	return best
}

type acceptSpec struct {
	value string
	q     float64
}

// parseAcceptEncoding reads "coding[;q=x], ..." values. A malformed
// element ends the reading of its value, as it does for promhttp.
func parseAcceptEncoding(values []string) []acceptSpec {
	var specs []acceptSpec
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			name, params, hasParams := strings.Cut(strings.TrimSpace(elem), ";")
			name = strings.TrimSpace(name)
			if name == "" || strings.ContainsAny(name, " \t") {
				break
			}
			sp := acceptSpec{value: name, q: 1}
			if hasParams {
				params = strings.TrimSpace(params)
				qs, ok := strings.CutPrefix(params, "q=")
				q, err := strconv.ParseFloat(qs, 64)
				if !ok || err != nil || q < 0 || q > 1 {
					break
				}
				sp.q = q
			}
			specs = append(specs, sp)
		}
	}
	return specs
}

// exposition writes one scrape.
type exposition struct {
	w       io.Writer
	format  expfmt.Format
	enc     expfmt.Encoder
	slot    *formatSlot
	batches []*batchSeries
	now     time.Time
	// scratch is reused to encode a batch.
	scratch bytes.Buffer
	// local holds this scrape's encodings that are not kept across
	// scrapes: of batches not settled, or in a format without a slot.
	local map[*batchSeries]*encodedBatch
}

// write encodes rest (sorted by name, as a Gatherer returns them) with the
// batches' families merged in by name, keeping only the families filter
// names when it is not nil.
func (e *exposition) write(rest []*dto.MetricFamily, filter map[string]bool) error {
	var errs []error
	fams := batchFamilies
	for _, mf := range rest {
		for len(fams) > 0 && fams[0].name < mf.GetName() {
			if err := e.writeBatchFamily(fams[0], filter); err != nil {
				errs = append(errs, err)
			}
			fams = fams[1:]
		}
		if len(fams) > 0 && fams[0].name == mf.GetName() {
			// A family of the self metrics with a batch family's name
			// cannot be merged byte-wise; it is left out as a collision.
			errs = append(errs, fmt.Errorf("metric family %q is both a batch family and another collector's", mf.GetName()))
			continue
		}
		if filter != nil && !filter[mf.GetName()] {
			continue
		}
		if err := e.enc.Encode(mf); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range fams {
		if err := e.writeBatchFamily(f, filter); err != nil {
			errs = append(errs, err)
		}
	}
	if c, ok := e.enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeBatchFamily writes family f of every batch, in the batches' order
// (that of the labels), or nothing when no batch has a series in it.
func (e *exposition) writeBatchFamily(f *batchFamily, filter map[string]bool) error {
	if filter != nil && !filter[f.name] {
		return nil
	}
	if e.slot == nil {
		return e.encodeBatchFamily(f)
	}
	size := 0
	for _, b := range e.batches {
		seg, err := e.segment(b, f)
		if err != nil {
			return err
		}
		size += len(seg)
	}
	if size == 0 {
		return nil
	}
	header := e.slot.headers[f.index]
	if e.slot.kind == kindProtoDelim {
		var prefix []byte
		prefix = protowire.AppendVarint(prefix, uint64(len(header)+size))
		if _, err := e.w.Write(prefix); err != nil {
			return err
		}
	}
	if _, err := e.w.Write(header); err != nil {
		return err
	}
	for _, b := range e.batches {
		seg, _ := e.segment(b, f)
		if _, err := e.w.Write(seg); err != nil {
			return err
		}
	}
	return nil
}

// segment is family f's part of batch b in the scrape's format.
func (e *exposition) segment(b *batchSeries, f *batchFamily) ([]byte, error) {
	kept := b.cached && e.slot.index >= 0
	var enc *encodedBatch
	if kept {
		enc = b.enc[e.slot.index].Load()
	} else {
		enc = e.local[b]
	}
	if enc == nil {
		var err error
		if enc, err = e.slot.encode(&e.scratch, b.metrics(e.now)); err != nil {
			return nil, err
		}
		if kept {
			b.enc[e.slot.index].Store(enc)
		} else {
			e.local[b] = enc
		}
	}
	return enc.family(f.index), nil
}

// encodeBatchFamily encodes family f of every batch as one MetricFamily,
// for the formats that cannot be written in parts (the protobuf text
// formats).
func (e *exposition) encodeBatchFamily(f *batchFamily) error {
	mf := f.family()
	for _, b := range e.batches {
		mf.Metric = append(mf.Metric, b.metrics(e.now)[f.index]...)
	}
	if len(mf.Metric) == 0 {
		return nil
	}
	return e.enc.Encode(mf)
}

// family is an empty MetricFamily of f.
func (f *batchFamily) family() *dto.MetricFamily {
	name, help, typ := f.name, f.help, dto.MetricType_GAUGE
	return &dto.MetricFamily{Name: &name, Help: &help, Type: &typ}
}

// formatKind is how a format's families are put together from parts.
type formatKind int

const (
	// kindText: the family's comment lines, then its series' lines (the
	// text format and OpenMetrics).
	kindText formatKind = iota
	// kindProtoDelim: a length-delimited MetricFamily whose name, help and
	// type fields come first, then one field per metric.
	kindProtoDelim
)

// formatSlot is one negotiated format whose encoded series are kept.
type formatSlot struct {
	index  int
	format expfmt.Format
	kind   formatKind
	// headers are what each batch family starts with in this format.
	headers [][]byte
}

// newFormatSlot returns the slot of format, or nil when its families
// cannot be written in parts.
func newFormatSlot(index int, format expfmt.Format) (*formatSlot, error) {
	s := &formatSlot{index: index, format: format}
	switch format.FormatType() {
	case expfmt.TypeTextPlain, expfmt.TypeOpenMetrics:
		s.kind = kindText
	case expfmt.TypeProtoDelim:
		s.kind = kindProtoDelim
	default:
		return nil, nil
	}
	// Each family's header is that of the family with one series, whose
	// own part is cut off.
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, f := range batchFamilies {
		mf := f.family()
		m, err := prometheus.NewConstMetric(f.desc, prometheus.GaugeValue, 0, make([]string, len(f.labels))...)
		if err != nil {
			return nil, err
		}
		d := &dto.Metric{}
		if err := m.Write(d); err != nil {
			return nil, err
		}
		mf.Metric = []*dto.Metric{d}
		buf.Reset()
		if err := enc.Encode(mf); err != nil {
			return nil, fmt.Errorf("encoding the header of %s: %w", f.name, err)
		}
		header, _, err := s.split(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("encoding the header of %s: %w", f.name, err)
		}
		s.headers = append(s.headers, bytes.Clone(header))
	}
	return s, nil
}

// split cuts one encoded family into its header and its series' part.
func (s *formatSlot) split(b []byte) (header, series []byte, err error) {
	if s.kind == kindText {
		i := 0
		for i < len(b) && b[i] == '#' {
			nl := bytes.IndexByte(b[i:], '\n')
			if nl < 0 {
				return nil, nil, errors.New("unterminated comment line")
			}
			i += nl + 1
		}
		return b[:i], b[i:], nil
	}
	size, n := protowire.ConsumeVarint(b)
	if n < 0 || uint64(len(b)-n) != size {
		return nil, nil, errors.New("malformed length prefix")
	}
	msg := b[n:]
	// The metric fields (4) follow the others, as proto.Marshal orders
	// fields by number; a field after them would not survive the cut.
	i := 0
	for i < len(msg) {
		num, typ, tn := protowire.ConsumeTag(msg[i:])
		if tn < 0 {
			return nil, nil, errors.New("malformed field tag")
		}
		vn := protowire.ConsumeFieldValue(num, typ, msg[i+tn:])
		if vn < 0 {
			return nil, nil, errors.New("malformed field")
		}
		if num == 4 {
			break
		}
		i += tn + vn
	}
	for j := i; j < len(msg); {
		num, typ, tn := protowire.ConsumeTag(msg[j:])
		vn := protowire.ConsumeFieldValue(num, typ, msg[j+tn:])
		if num != 4 {
			return nil, nil, fmt.Errorf("field %d after the metrics", num)
		}
		j += tn + vn
	}
	return msg[:i], msg[i:], nil
}

// encode encodes the series of one batch, family by family, in the slot's
// format.
func (s *formatSlot) encode(scratch *bytes.Buffer, metrics [][]*dto.Metric) (*encodedBatch, error) {
	out := &encodedBatch{ends: make([]int32, len(batchFamilies))}
	enc := expfmt.NewEncoder(scratch, s.format)
	for i, f := range batchFamilies {
		if len(metrics[i]) > 0 {
			mf := f.family()
			mf.Metric = metrics[i]
			scratch.Reset()
			if err := enc.Encode(mf); err != nil {
				return nil, fmt.Errorf("encoding %s: %w", f.name, err)
			}
			_, series, err := s.split(scratch.Bytes())
			if err != nil {
				return nil, fmt.Errorf("encoding %s: %w", f.name, err)
			}
			out.bytes = append(out.bytes, series...)
		}
		out.ends[i] = int32(len(out.bytes))
	}
	// Kept for as long as the batch is settled: no spare capacity.
	out.bytes = bytes.Clone(out.bytes)
	return out, nil
}

// encodedBatch is one batch's series in one format: family i is
// bytes[ends[i-1]:ends[i]].
type encodedBatch struct {
	bytes []byte
	ends  []int32
}

func (e *encodedBatch) family(i int) []byte {
	from := int32(0)
	if i > 0 {
		from = e.ends[i-1]
	}
	return e.bytes[from:e.ends[i]]
}

// batchMetrics builds the series of one batch as Write gives them to a
// registry, by family, each family sorted by its labels as a registry sorts
// them. A series whose labels repeat one already built (two error codes
// that differ only in invalid UTF-8) is dropped, as a registry drops it.
func batchMetrics(r batchstate.Result, now time.Time) [][]*dto.Metric {
	out := make([][]*dto.Metric, len(batchFamilies))
	var err error
	emitBatch(func(m prometheus.Metric) {
		d := &dto.Metric{}
		if werr := m.Write(d); werr != nil {
			err = werr
			return
		}
		i := familyIndex[m.Desc()]
		out[i] = append(out[i], d)
	}, r, now)
	if err != nil {
		// ConstMetric.Write does not fail; a batch that could would be
		// left out rather than served half.
		return make([][]*dto.Metric, len(batchFamilies))
	}
	for i, ms := range out {
		slices.SortStableFunc(ms, compareLabels)
		out[i] = slices.CompactFunc(ms, func(a, b *dto.Metric) bool { return compareLabels(a, b) == 0 })
	}
	return out
}

// familyIndex finds a batch family by its descriptor.
var familyIndex = func() map[*prometheus.Desc]int {
	m := make(map[*prometheus.Desc]int, len(batchFamilies))
	for _, f := range batchFamilies {
		m[f.desc] = f.index
	}
	return m
}()

// compareLabels orders two series of one family by their label values, in
// the order of the label names: a registry's order.
func compareLabels(a, b *dto.Metric) int {
	if c := cmp.Compare(len(a.Label), len(b.Label)); c != 0 {
		return c
	}
	for i, l := range a.Label {
		if c := strings.Compare(l.GetValue(), b.Label[i].GetValue()); c != 0 {
			return c
		}
	}
	return 0
}
