package partnercentertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

const (
	customerID = "47021739-3426-4df4-8f3e-6d4b6e7c1a2b"
	trackingID = "0127ed8e-ff72-4983-a3d8-e8d8bd378932"
	resource   = "https://api.partnercenter.microsoft.com"
)

// start is the fake clock's initial time: Unix 1714564800.
var start = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newServer(t *testing.T) (*partnercentertest.Server, *testkit.Clock) {
	t.Helper()
	s := partnercentertest.NewServer()
	t.Cleanup(s.Close)
	clock := testkit.NewClock(start)
	s.SetClock(clock.Now)
	return s, clock
}

func postToken(t *testing.T, tokenURL string, form url.Values) testkit.Answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return testkit.SendRequest(t, http.DefaultClient, req)
}

func clientCredentials() url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {partnercentertest.DefaultClientID},
		"client_secret": {partnercentertest.DefaultClientSecret},
		"resource":      {resource},
	}
}

func batchURL(s *partnercentertest.Server, tracking string) string {
	return s.URL + "/v1/customers/" + customerID + "/batchJobStatus/" + tracking
}

func getBatch(t *testing.T, s *partnercentertest.Server, tracking, token string) testkit.Answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, batchURL(s, tracking), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return testkit.SendRequest(t, http.DefaultClient, req)
}

// accessToken gets a token through the client_credentials grant.
func accessToken(t *testing.T, s *partnercentertest.Server) string {
	t.Helper()
	r := postToken(t, s.TokenURL(), clientCredentials())
	if r.Status != http.StatusOK {
		t.Fatalf("token request: status %d, body %s", r.Status, r.Body)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatalf("decode token answer %s: %v", r.Body, err)
	}
	return body.AccessToken
}

func decodeObject(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return m
}

var smallBatch = partnercentertest.Batch{
	TrackingID:  trackingID,
	Status:      "finished_with_errors",
	StartedTime: "2024-05-01T10:00:00",
	Devices: []partnercentertest.Device{
		{DeviceID: "8f0e6c43-9d3b-4d7a-9a51-2b7c1d0e5f64", SerialNumber: "5CG1234ABC", ProductKey: "3301234567890", Status: "finished"},
		{SerialNumber: "PF3XK2Q7", ProductKey: "3309876543210", Status: "finished_with_errors", ErrorCode: "808", ErrorDescription: "ZtdDeviceAssignedToOtherTenant"},
		{SerialNumber: `<PF&"1">`, Status: "finished_with_errors", ErrorCode: "999", ErrorDescription: "it's <bad> & \"odd\"\n"},
	},
}

const smallBatchJSON = `{"batchTrackingId":"0127ed8e-ff72-4983-a3d8-e8d8bd378932","status":"finished_with_errors","startedTime":"2024-05-01T10:00:00","completedTime":null,"devicesStatus":[` +
	`{"deviceId":"8f0e6c43-9d3b-4d7a-9a51-2b7c1d0e5f64","serialNumber":"5CG1234ABC","productKey":"3301234567890","status":"finished","errorCode":null,"errorDescription":null,"attributes":{"objectType":"DeviceUploadDetails"}},` +
	`{"deviceId":null,"serialNumber":"PF3XK2Q7","productKey":"3309876543210","status":"finished_with_errors","errorCode":"808","errorDescription":"ZtdDeviceAssignedToOtherTenant","attributes":{"objectType":"DeviceUploadDetails"}},` +
	`{"deviceId":null,"serialNumber":"<PF&\"1\">","productKey":null,"status":"finished_with_errors","errorCode":"999","errorDescription":"it's <bad> & \"odd\"\n","attributes":{"objectType":"DeviceUploadDetails"}}` +
	`],"attributes":{"objectType":"BatchUploadDetails"}}`

const smallBatchXML = `<BatchUploadDetails xmlns="http://schemas.datacontract.org/2004/07/Microsoft.Partner.Providers.Contracts.V1" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
	`<BatchTrackingId>0127ed8e-ff72-4983-a3d8-e8d8bd378932</BatchTrackingId><CompletedTime i:nil="true"/><DevicesStatus>` +
	`<DeviceUploadDetails><DeviceId>8f0e6c43-9d3b-4d7a-9a51-2b7c1d0e5f64</DeviceId><ErrorCode i:nil="true"/><ErrorDescription i:nil="true"/><ProductKey>3301234567890</ProductKey><SerialNumber>5CG1234ABC</SerialNumber><Status>finished</Status></DeviceUploadDetails>` +
	`<DeviceUploadDetails><DeviceId i:nil="true"/><ErrorCode>808</ErrorCode><ErrorDescription>ZtdDeviceAssignedToOtherTenant</ErrorDescription><ProductKey>3309876543210</ProductKey><SerialNumber>PF3XK2Q7</SerialNumber><Status>finished_with_errors</Status></DeviceUploadDetails>` +
	`<DeviceUploadDetails><DeviceId i:nil="true"/><ErrorCode>999</ErrorCode><ErrorDescription>it&#39;s &lt;bad&gt; &amp; &#34;odd&#34;&#xA;</ErrorDescription><ProductKey i:nil="true"/><SerialNumber>&lt;PF&amp;&#34;1&#34;&gt;</SerialNumber><Status>finished_with_errors</Status></DeviceUploadDetails>` +
	`</DevicesStatus><StartedTime>2024-05-01T10:00:00</StartedTime><Status>finished_with_errors</Status></BatchUploadDetails>`

func TestRender(t *testing.T) {
	empty := partnercentertest.Batch{Status: "queued"}
	tests := []struct {
		name   string
		render func(partnercentertest.Batch) []byte
		batch  partnercentertest.Batch
		want   string
	}{
		{"json", partnercentertest.RenderJSON, smallBatch, smallBatchJSON},
		{"xml", partnercentertest.RenderXML, smallBatch, smallBatchXML},
		{
			"json without devices", partnercentertest.RenderJSON, empty,
			`{"batchTrackingId":null,"status":"queued","startedTime":null,"completedTime":null,"devicesStatus":[],"attributes":{"objectType":"BatchUploadDetails"}}`,
		},
		{
			"xml without devices", partnercentertest.RenderXML, empty,
			`<BatchUploadDetails xmlns="http://schemas.datacontract.org/2004/07/Microsoft.Partner.Providers.Contracts.V1" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
				`<BatchTrackingId i:nil="true"/><CompletedTime i:nil="true"/><DevicesStatus/><StartedTime i:nil="true"/><Status>queued</Status></BatchUploadDetails>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.render(tt.batch)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestBatchFormats(t *testing.T) {
	tests := []struct {
		format          string
		wantContentType string
		wantBody        string
	}{
		{"", "application/json; charset=utf-8", smallBatchJSON},
		{"json", "application/json; charset=utf-8", smallBatchJSON},
		{"json-bom", "application/json; charset=utf-8", "\xEF\xBB\xBF" + smallBatchJSON},
		{"xml", "application/xml; charset=utf-8", smallBatchXML},
	}
	for _, tt := range tests {
		t.Run("format "+tt.format, func(t *testing.T) {
			s, _ := newServer(t)
			s.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Format: tt.format})
			r := getBatch(t, s, trackingID, accessToken(t, s))
			if r.Status != http.StatusOK {
				t.Fatalf("status %d, want 200", r.Status)
			}
			if got := r.Header.Get("Content-Type"); got != tt.wantContentType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantContentType)
			}
			if r.Body != tt.wantBody {
				t.Errorf("body\n%q\nwant\n%q", r.Body, tt.wantBody)
			}
		})
	}
}

const (
	unauthorizedBody = `{"code":401,"description":"Authorization failed: the access token is missing, invalid or expired.","errorName":"Unauthorized","isRetryable":false,"data":[],"source":"PartnerFD"}`
	notFoundBody     = `{"code":600,"description":"The resource was not found.","errorName":"NotFound","isRetryable":false,"data":[],"source":"PartnerFD"}`
)

func TestBatchAuthorization(t *testing.T) {
	s, clock := newServer(t)
	s.SetBatch(customerID, trackingID, smallBatch)
	token := accessToken(t, s)

	expect := func(step, token string, wantStatus int, wantBody string) {
		t.Helper()
		r := getBatch(t, s, trackingID, token)
		if r.Status != wantStatus || r.Body != wantBody {
			t.Errorf("%s: status %d body %s; want %d %s", step, r.Status, r.Body, wantStatus, wantBody)
		}
		if wantStatus == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%s: WWW-Authenticate %q, want Bearer", step, r.Header.Get("WWW-Authenticate"))
		}
	}
	expect("no token", "", 401, unauthorizedBody)
	expect("unknown token", "made-up", 401, unauthorizedBody)
	expect("issued token", token, 200, smallBatchJSON)

	clock.Advance(time.Hour - time.Second)
	expect("token in its last second", token, 200, smallBatchJSON)
	clock.Advance(time.Second)
	expect("token past its lifetime", token, 401, unauthorizedBody)

	fresh := accessToken(t, s)
	s.AddAccessToken("from-file")
	expect("fresh token", fresh, 200, smallBatchJSON)
	expect("added token", "from-file", 200, smallBatchJSON)
	clock.Advance(365 * 24 * time.Hour)
	expect("added token a year later", "from-file", 200, smallBatchJSON)

	s.ExpireTokens()
	expect("added token after ExpireTokens", "from-file", 401, unauthorizedBody)
	expect("issued token after ExpireTokens", fresh, 401, unauthorizedBody)
	expect("token issued after ExpireTokens", accessToken(t, s), 200, smallBatchJSON)
}

func TestBatchNotFoundAndCaseInsensitiveIDs(t *testing.T) {
	s, _ := newServer(t)
	token := accessToken(t, s)
	s.SetBatch(strings.ToUpper(customerID), trackingID, smallBatch)

	if r := getBatch(t, s, strings.ToUpper(trackingID), token); r.Status != http.StatusOK {
		t.Errorf("IDs in other case: status %d, want 200", r.Status)
	}
	if r := getBatch(t, s, "11111111-1111-1111-1111-111111111111", token); r.Status != http.StatusNotFound || r.Body != notFoundBody {
		t.Errorf("unknown batch: status %d body %s", r.Status, r.Body)
	}
	s.RemoveBatch(customerID, trackingID)
	if r := getBatch(t, s, trackingID, token); r.Status != http.StatusNotFound || r.Body != notFoundBody {
		t.Errorf("removed batch: status %d body %s", r.Status, r.Body)
	}
	if got := s.BatchRequests(strings.ToUpper(customerID), trackingID); got != 2 {
		t.Errorf("BatchRequests = %d, want 2 (kept after RemoveBatch)", got)
	}
}

func TestUnknownPaths(t *testing.T) {
	s, _ := newServer(t)
	for _, path := range []string{
		"/",
		"//",
		"/v1/customers/" + customerID,
		"/v2/customers/" + customerID + "/batchJobStatus/" + trackingID,
		"/v1/customers/" + customerID + "/batchJobStatus/" + trackingID + "/devices",
		"/contoso.onmicrosoft.com/oauth2/v3.0/token",
		"/%ff",
	} {
		t.Run(path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := testkit.SendRequest(t, http.DefaultClient, req)
			if r.Status != http.StatusNotFound || r.Body != "404 page not found\n" {
				t.Errorf("status %d body %q, want 404 page not found", r.Status, r.Body)
			}
		})
	}
	if n := s.TotalBatchRequests(); n != 0 {
		t.Errorf("TotalBatchRequests = %d, want 0", n)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, batchURL(s, trackingID), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := testkit.SendRequest(t, http.DefaultClient, req); r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET" {
		t.Errorf("DELETE: status %d Allow %q, want 405 GET", r.Status, r.Header.Get("Allow"))
	}
}

func TestScriptedResponses(t *testing.T) {
	s, _ := newServer(t)
	token := accessToken(t, s)
	s.SetResponses(customerID, trackingID, smallBatch,
		partnercentertest.Response{Status: 429, Header: http.Header{"Retry-After": {"7"}}},
		partnercentertest.Response{Status: 429},
		partnercentertest.Response{Status: 503, Body: []byte("upstream down"), ContentType: "text/plain"},
		partnercentertest.Response{Format: "xml"},
		partnercentertest.Response{Status: 200, Body: []byte{}},
		partnercentertest.Response{},
	)
	// A refused request does not use up the script.
	if r := getBatch(t, s, trackingID, "wrong"); r.Status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", r.Status)
	}

	tests := []struct {
		wantStatus      int
		wantRetryAfter  string
		wantContentType string
		wantBody        string
	}{
		{429, "7", "application/json; charset=utf-8", `{"code":429,"description":"Too Many Requests.","errorName":"TooManyRequests","isRetryable":true,"data":[],"source":"PartnerFD"}`},
		{429, "", "application/json; charset=utf-8", `{"code":429,"description":"Too Many Requests.","errorName":"TooManyRequests","isRetryable":true,"data":[],"source":"PartnerFD"}`},
		{503, "", "text/plain", "upstream down"},
		{200, "", "application/xml; charset=utf-8", smallBatchXML},
		{200, "", "application/json; charset=utf-8", ""},
		{200, "", "application/json; charset=utf-8", smallBatchJSON},
		{200, "", "application/json; charset=utf-8", smallBatchJSON}, // the last one repeats
	}
	for i, tt := range tests {
		r := getBatch(t, s, trackingID, token)
		if r.Status != tt.wantStatus || r.Header.Get("Retry-After") != tt.wantRetryAfter ||
			r.Header.Get("Content-Type") != tt.wantContentType || r.Body != tt.wantBody {
			t.Errorf("request %d: got %d Retry-After %q Content-Type %q body %q; want %d %q %q %q",
				i, r.Status, r.Header.Get("Retry-After"), r.Header.Get("Content-Type"), r.Body,
				tt.wantStatus, tt.wantRetryAfter, tt.wantContentType, tt.wantBody)
		}
	}
	if got := s.BatchRequests(customerID, trackingID); got != len(tests)+1 {
		t.Errorf("BatchRequests = %d, want %d", got, len(tests)+1)
	}
}

func TestMisconfiguredResponses(t *testing.T) {
	tests := []struct {
		name     string
		response partnercentertest.Response
		wantBody string
	}{
		{
			"unknown format",
			partnercentertest.Response{Format: "yaml"},
			`{"code":500,"description":"partnercentertest: unknown Response.Format \"yaml\" (want json, xml or json-bom)","errorName":"PartnerCenterTestMisconfigured","isRetryable":false,"data":[],"source":"PartnerFD"}`,
		},
		{
			"status out of range",
			partnercentertest.Response{Status: 1000},
			`{"code":500,"description":"partnercentertest: Response.Status 1000 is not a final HTTP status","errorName":"PartnerCenterTestMisconfigured","isRetryable":false,"data":[],"source":"PartnerFD"}`,
		},
		{
			"informational status",
			partnercentertest.Response{Status: 103},
			`{"code":500,"description":"partnercentertest: Response.Status 103 is not a final HTTP status","errorName":"PartnerCenterTestMisconfigured","isRetryable":false,"data":[],"source":"PartnerFD"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t)
			s.SetResponses(customerID, trackingID, smallBatch, tt.response)
			r := getBatch(t, s, trackingID, accessToken(t, s))
			if r.Status != http.StatusInternalServerError || r.Body != tt.wantBody {
				t.Errorf("status %d body %s; want 500 %s", r.Status, r.Body, tt.wantBody)
			}
		})
	}
}

func TestSetHandler(t *testing.T) {
	s, clock := newServer(t)
	token := accessToken(t, s)
	type callInfo struct {
		call int
		now  time.Time
	}
	var (
		mu    sync.Mutex
		calls []callInfo
	)
	s.SetHandler(customerID, trackingID, func(call int, now time.Time) (partnercentertest.Batch, partnercentertest.Response) {
		mu.Lock()
		calls = append(calls, callInfo{call, now})
		mu.Unlock()
		statuses := []string{"queued", "processing", "finished"}
		return partnercentertest.Batch{TrackingID: trackingID, Status: statuses[min(call, len(statuses)-1)]}, partnercentertest.Response{}
	})
	var got []string
	for range 4 {
		var body struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(getBatch(t, s, trackingID, token).Body), &body); err != nil {
			t.Fatal(err)
		}
		got = append(got, body.Status)
		clock.Advance(time.Minute)
	}
	if want := []string{"queued", "processing", "finished", "finished"}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	want := []callInfo{{0, start}, {1, start.Add(time.Minute)}, {2, start.Add(2 * time.Minute)}, {3, start.Add(3 * time.Minute)}}
	if !slices.Equal(calls, want) {
		t.Errorf("handler calls %v, want %v", calls, want)
	}

	s.SetHandler(customerID, trackingID, nil)
	if r := getBatch(t, s, trackingID, token); r.Status != http.StatusNotFound {
		t.Errorf("status %d after SetHandler(nil), want 404", r.Status)
	}
}

func TestRequestLogAndCounters(t *testing.T) {
	s, clock := newServer(t)
	s.SetBatch(customerID, trackingID, smallBatch)
	token := accessToken(t, s)
	clock.Advance(time.Second)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, batchURL(s, trackingID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("MS-RequestId", "11111111-2222-3333-4444-555555555555")
	req.Header.Set("MS-CorrelationId", "66666666-7777-8888-9999-000000000000")
	req.Header.Set("User-Agent", "partnercenter_exporter/test")
	req.Header.Set("Accept", "application/json")
	r := testkit.SendRequest(t, http.DefaultClient, req)
	if r.Header.Get("MS-RequestId") != "11111111-2222-3333-4444-555555555555" ||
		r.Header.Get("MS-CorrelationId") != "66666666-7777-8888-9999-000000000000" {
		t.Errorf("tracing headers not echoed: %v", r.Header)
	}
	getBatch(t, s, trackingID, "")
	getBatch(t, s, "22222222-2222-2222-2222-222222222222", token)

	log := s.Requests()
	if len(log) != 4 {
		t.Fatalf("logged %d requests, want 4", len(log))
	}
	tokenEntry := log[0]
	if tokenEntry.Method != "POST" || tokenEntry.Path != "/contoso.onmicrosoft.com/oauth2/token" ||
		tokenEntry.Status != 200 || tokenEntry.Grant != "client_credentials" ||
		tokenEntry.ClientID != partnercentertest.DefaultClientID || tokenEntry.Resource != resource || !tokenEntry.Time.Equal(start) {
		t.Errorf("token request logged as %+v", tokenEntry)
	}
	batchEntry := log[1]
	wantHeaders := map[string]string{
		"Authorization":    "Bearer " + token,
		"Ms-Requestid":     "11111111-2222-3333-4444-555555555555",
		"Ms-Correlationid": "66666666-7777-8888-9999-000000000000",
		"User-Agent":       "partnercenter_exporter/test",
		"Accept":           "application/json",
	}
	for name, want := range wantHeaders {
		if got := batchEntry.Header.Get(name); got != want {
			t.Errorf("logged header %s = %q, want %q", name, got, want)
		}
	}
	if batchEntry.Method != "GET" || batchEntry.Path != "/v1/customers/"+customerID+"/batchJobStatus/"+trackingID ||
		batchEntry.Status != 200 || batchEntry.Grant != "" || !batchEntry.Time.Equal(start.Add(time.Second)) {
		t.Errorf("batch request logged as %+v", batchEntry)
	}
	if log[2].Status != 401 || log[3].Status != 404 {
		t.Errorf("logged statuses %d, %d; want 401, 404", log[2].Status, log[3].Status)
	}
	for _, entry := range log {
		for _, values := range entry.Header {
			for _, v := range values {
				if strings.Contains(v, partnercentertest.DefaultClientSecret) {
					t.Errorf("the client secret was logged: %+v", entry)
				}
			}
		}
	}

	counts := map[string]int{
		"BatchRequests":              s.BatchRequests(customerID, trackingID),
		"BatchRequests unknown":      s.BatchRequests(customerID, "22222222-2222-2222-2222-222222222222"),
		"BatchRequests never asked":  s.BatchRequests(customerID, "33333333-3333-3333-3333-333333333333"),
		"TotalBatchRequests":         s.TotalBatchRequests(),
		"TokenRequests":              s.TokenRequests(),
		"MaxConcurrentBatchRequests": s.MaxConcurrentBatchRequests(),
		"AbortedRequests":            s.AbortedRequests(),
	}
	wantCounts := map[string]int{
		"BatchRequests":              2,
		"BatchRequests unknown":      1,
		"BatchRequests never asked":  0,
		"TotalBatchRequests":         3,
		"TokenRequests":              1,
		"MaxConcurrentBatchRequests": 1,
		"AbortedRequests":            0,
	}
	if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
		t.Errorf("counters %v, want %v", counts, wantCounts)
	}
}

func TestMaxConcurrentBatchRequests(t *testing.T) {
	const parallel = 4
	s, _ := newServer(t)
	token := accessToken(t, s)
	var arrived atomic.Int32
	allArrived := make(chan struct{})
	s.SetHandler(customerID, trackingID, func(int, time.Time) (partnercentertest.Batch, partnercentertest.Response) {
		if arrived.Add(1) == parallel {
			close(allArrived)
		}
		// Hold every request until all of them are in; the timeout only
		// keeps a broken client from hanging the test.
		select {
		case <-allArrived:
		case <-time.After(10 * time.Second):
		}
		return smallBatch, partnercentertest.Response{}
	})

	var wg sync.WaitGroup
	statuses := make([]int, parallel)
	for i := range parallel {
		wg.Go(func() {
			statuses[i] = getBatch(t, s, trackingID, token).Status
		})
	}
	wg.Wait()
	// Sequential requests afterwards must not raise the peak.
	for range 3 {
		getBatch(t, s, trackingID, token)
	}
	if !slices.Equal(statuses, []int{200, 200, 200, 200}) {
		t.Errorf("statuses %v, want all 200", statuses)
	}
	if got := s.MaxConcurrentBatchRequests(); got != parallel {
		t.Errorf("MaxConcurrentBatchRequests = %d, want %d", got, parallel)
	}
}

func TestLatencyEndsWhenClientGivesUp(t *testing.T) {
	s, _ := newServer(t)
	token := accessToken(t, s)
	s.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Latency: time.Hour})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, batchURL(s, trackingID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	errs := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errs <- err
	}()
	testkit.WaitUntil(t, "the request to reach the server", func() bool { return s.TotalBatchRequests() == 1 })
	cancel()
	if err := <-errs; err == nil {
		t.Error("the canceled request succeeded")
	}
	testkit.WaitUntil(t, "the handler to give up", func() bool { return s.AbortedRequests() == 1 })

	log := s.Requests()
	if last := log[len(log)-1]; last.Status != 0 {
		t.Errorf("aborted request logged with status %d, want 0", last.Status)
	}
}

func TestLatencyWithClientTimeout(t *testing.T) {
	s, _ := newServer(t)
	token := accessToken(t, s)
	s.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Latency: time.Hour})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, batchURL(s, trackingID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request with an hour of latency beat a 50ms client timeout")
	}
	testkit.WaitUntil(t, "the handler to give up", func() bool { return s.AbortedRequests() == 1 })
}

func TestCloseEndsLatency(t *testing.T) {
	s := partnercentertest.NewServer()
	defer s.Close()
	token := accessToken(t, s)
	s.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Latency: time.Hour})
	errs := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, batchURL(s, trackingID), nil)
		if err != nil {
			errs <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errs <- err
	}()
	testkit.WaitUntil(t, "the request to reach the server", func() bool { return s.TotalBatchRequests() == 1 })
	s.Close() // returns only once the handler has returned
	if got := s.AbortedRequests(); got != 1 {
		t.Errorf("AbortedRequests = %d after Close, want 1", got)
	}
	if err := <-errs; err == nil {
		t.Error("the request succeeded although the server closed during its latency")
	}
	s.Close() // a second Close does nothing
}
