package daemon

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// connectProxy is a forward proxy that only tunnels (CONNECT), as
// corporate proxies do for https. It records each CONNECT.
type connectProxy struct {
	ln    net.Listener
	url   string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	seen  []connectRequest
}

type connectRequest struct {
	target string // host:port asked for
	header http.Header
}

func startConnectProxy(t *testing.T) *connectProxy {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, url: "http://" + ln.Addr().String()}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *connectProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Go(func() { p.tunnel(c) })
	}
}

// tunnel answers one CONNECT and splices the connection to its target.
func (p *connectProxy) tunnel(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, connectRequest{target: req.Host, header: req.Header.Clone()})
	p.mu.Unlock()
	var d net.Dialer
	upstream, err := d.DialContext(req.Context(), "tcp", req.Host)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer upstream.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(upstream, br) // br may already hold the client's first bytes
		_ = upstream.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, upstream)
	_ = c.Close() // ends the copy above if the client is still sending
	<-done
}

func (p *connectProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *connectProxy) requests() []connectRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// targets are the distinct host:port values tunnelled to, sorted.
func (p *connectProxy) targets() []string {
	var out []string
	for _, r := range p.requests() {
		if !slices.Contains(out, r.target) {
			out = append(out, r.target)
		}
	}
	slices.Sort(out)
	return out
}

// tlsFake serves one batch of customer1 over https, in status.
func tlsFake(t *testing.T, ca *testkit.CA, status string) *partnercentertest.Server {
	t.Helper()
	srv, err := partnercentertest.StartTLS(ca.ServerCert(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.SetCredentials(testkit.ClientID, testkit.ClientSecret)
	srv.SetResponses(testkit.Customer1, testkit.FinishedID, partnercentertest.Batch{
		TrackingID: testkit.FinishedID, Status: status, StartedTime: "2026-11-25T10:00:00Z",
	}, partnercentertest.Response{})
	return srv
}

const proxyAuth = "Basic cHJveHktdXNlcjpwcm94eS1wYXNz" // proxy-user:proxy-pass

// writeNetConfig writes a config that reads finishedID from srv, asking
// the API on 127.0.0.1 and for tokens on localhost, so that the proxy's
// CONNECT targets show that each went through it. httpClient is the
// http_client block, indented for it. The CA is written as ca.pem.
func writeNetConfig(t *testing.T, srv *partnercentertest.Server, caPEM []byte, auth, httpClient string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"ca.pem": string(caPEM), "client_secret": testkit.ClientSecret, "token": "t0ken-from-file"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tokenURL := strings.Replace(srv.TokenURL(), "127.0.0.1", "localhost", 1)
	if auth == "" {
		auth = fmt.Sprintf("  client_id: %s\n  client_secret_file: client_secret\n  token_url: %s\n", testkit.ClientID, tokenURL)
	}
	yml := fmt.Sprintf("partner_center:\n  base_url: %s\n  refresh_interval: 0s\n  request_timeout: 5s\n  http_client:\n%s"+
		"auth:\n%scustomers:\n  - id: %s\n    batches: [%s]\n", srv.URL, httpClient, auth, testkit.Customer1, testkit.FinishedID)
	path := filepath.Join(dir, "partnercenter.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func proxyBlock(p *connectProxy) string {
	return fmt.Sprintf("    proxy_url: %s\n    proxy_connect_header:\n      Proxy-Authorization: ['%s']\n"+
		"    tls_config:\n      ca_file: ca.pem\n      min_version: TLS12\n", p.url, proxyAuth)
}

func TestHTTPClientThroughProxyWithPrivateCA(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	srv := tlsFake(t, ca, "finished")
	proxy := startConnectProxy(t)
	exp := startExporter(t, writeNetConfig(t, srv, ca.PEM, "", proxyBlock(proxy)))

	_, m := exp.scrape(t, "")
	if got := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); got != 1 {
		t.Fatalf("batch_scrape_success = %v, want 1; last_error %+v", got, lastError(t, exp, testkit.FinishedID))
	}
	if srv.TokenRequests() != 1 || srv.BatchRequests(testkit.Customer1, testkit.FinishedID) != 1 {
		t.Errorf("fake saw %d token and %d batch requests, want 1 and 1", srv.TokenRequests(), srv.BatchRequests(testkit.Customer1, testkit.FinishedID))
	}
	port := strings.TrimPrefix(srv.URL, "https://127.0.0.1:")
	if got, want := proxy.targets(), []string{"127.0.0.1:" + port, "localhost:" + port}; !slices.Equal(got, want) {
		t.Errorf("CONNECT targets = %q, want %q (API and token endpoint)", got, want)
	}
	for _, r := range proxy.requests() {
		if got := r.header.Values("Proxy-Authorization"); !slices.Equal(got, []string{proxyAuth}) {
			t.Errorf("CONNECT %s carried Proxy-Authorization %q, want %q", r.target, got, proxyAuth)
		}
	}
	shown := testkit.Get(t, exp.url+"/config", http.StatusOK)
	wantShown := "proxy_connect_header:\n            Proxy-Authorization:\n                - <secret>\n"
	if !strings.Contains(shown, "proxy_url: "+proxy.url) || !strings.Contains(shown, wantShown) || strings.Contains(shown, proxyAuth) {
		t.Errorf("/config does not show http_client with the header hidden:\n%s", shown)
	}
}

func TestHTTPClientRefusesUnknownCA(t *testing.T) {
	const unknownCA = "x509: certificate signed by unknown authority"
	ca := testkit.NewCA(t, "test CA")
	srv := tlsFake(t, ca, "finished")
	other := testkit.NewCA(t, "another CA")
	tests := []struct {
		name, auth, wantPrefix string
	}{
		// The token request is the first to meet the server.
		{"token endpoint", "", "get token: "},
		// No token endpoint: the API request meets it.
		{"API", "  access_token_file: token\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := startConnectProxy(t)
			exp := startExporter(t, writeNetConfig(t, srv, other.PEM, tt.auth, proxyBlock(proxy)))
			_, m := exp.scrape(t, "")
			if got := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); got != 0 {
				t.Errorf("batch_scrape_success = %v, want 0", got)
			}
			e := lastError(t, exp, testkit.FinishedID)
			if e == nil || !strings.HasPrefix(e.Message, tt.wantPrefix) || !strings.Contains(e.Message, unknownCA) {
				t.Errorf("last_error = %+v, want %q with %q", e, tt.wantPrefix, unknownCA)
			}
			if len(proxy.requests()) == 0 {
				t.Error("no CONNECT: the failing request did not go through the proxy")
			}
		})
	}
	if srv.TokenRequests() != 0 || srv.TotalBatchRequests() != 0 {
		t.Errorf("fake answered %d token and %d batch requests over an unverified connection", srv.TokenRequests(), srv.TotalBatchRequests())
	}
}

func TestHTTPClientReloadRebuildsClient(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	// Unfinished, so that every scrape reads it again.
	srv := tlsFake(t, ca, "processing")
	first, second := startConnectProxy(t), startConnectProxy(t)
	path := writeNetConfig(t, srv, ca.PEM, "", proxyBlock(first))
	exp := startExporter(t, path)
	exp.scrape(t, "")
	before := exp.state.live().client

	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 0s\n  max_concurrent_requests: 2") // not a client setting
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	if exp.state.live().client != before {
		t.Error("a reload that changed no client setting rebuilt the client")
	}
	testkit.SetConfig(t, path, first.url, second.url)
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	if exp.state.live().client == before {
		t.Fatal("a reload that changed http_client kept the old client")
	}
	firstCount := len(first.requests())
	exp.scrape(t, "")
	if len(second.requests()) == 0 || len(first.requests()) != firstCount {
		t.Errorf("after the reload: %d CONNECTs to the new proxy, %d new ones to the old, want some and none",
			len(second.requests()), len(first.requests())-firstCount)
	}
}

// Go never sends a request for a loopback host to a proxy named in the
// environment, so proxy_from_environment cannot be tested end to end with
// a loopback fake: this checks the transport's choice instead.
func TestHTTPClientProxyFromEnvironment(t *testing.T) {
	const envProxy = "http://proxy.example.com:3128"
	t.Setenv("HTTPS_PROXY", envProxy)
	t.Setenv("NO_PROXY", "login.microsoftonline.com")
	for _, tt := range []struct {
		name   string
		hc     config.HTTPClient
		target string
		want   string // "" for a direct connection
	}{
		{"environment ignored by default", config.HTTPClient{}, "https://api.partnercenter.microsoft.com/v1", ""},
		{"environment used when asked", fromEnv(), "https://api.partnercenter.microsoft.com/v1", envProxy},
		{"NO_PROXY honoured", fromEnv(), "https://login.microsoftonline.com/t/oauth2/token", ""},
		{"loopback never proxied", fromEnv(), "https://127.0.0.1:8443/v1", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc, err := pcclient.NewHTTPClient(tt.hc)
			if err != nil {
				t.Fatal(err)
			}
			if got := proxyFor(t, hc, tt.target); got != tt.want {
				t.Errorf("proxy for %s = %q, want %q", tt.target, got, tt.want)
			}
		})
	}
}

func fromEnv() config.HTTPClient {
	var hc config.HTTPClient
	hc.ProxyFromEnvironment = true
	return hc
}

// proxyFor returns the proxy the client's transport picks for target.
func proxyFor(t *testing.T, hc *http.Client, target string) string {
	t.Helper()
	tr := hc.Transport.(*http.Transport)
	if tr.Proxy == nil {
		return ""
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := tr.Proxy(req)
	if err != nil {
		t.Fatal(err)
	}
	if u == nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}
