package collector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// BenchmarkColdReads reads 500 unfinished batches for the first time,
// 32 at a time, from the fake Partner Center over HTTPS with 50 ms of
// latency per answer, through a transport built as the exporter builds it
// but for MaxIdleConnsPerHost (idle-N). The ideal is ceil(500/32) x 50 ms
// = 800 ms; x-ideal is the time over that, and conns the TLS connections
// the server accepted.
func BenchmarkColdReads(b *testing.B) {
	const batches, limit, latency = 500, 32, 50 * time.Millisecond
	cert, pool := selfSignedLoopback(b)
	srv, err := partnercentertest.StartTLS(cert)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ids := make([]string, batches)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		srv.SetResponses(custA, ids[i], partnercentertest.Batch{TrackingID: ids[i], Status: "processing"},
			partnercentertest.Response{Latency: latency})
	}
	cfg := testConfig(time.Hour, config.Customer{ID: custA, Name: "Contoso", Batches: ids})
	for _, idle := range []int{16, limit} {
		b.Run(fmt.Sprintf("idle=%d", idle), func(b *testing.B) {
			var dials countingDialer
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			t.MaxIdleConnsPerHost = idle
			t.DialContext = dials.dial
			hc := &http.Client{Transport: t}
			tokens := auth.NewClientCredentialsSource(auth.ClientCredentials{
				TokenURL: srv.TokenURL(), ClientID: partnercentertest.DefaultClientID, Resource: "https://api.partnercenter.microsoft.com",
				ClientSecret: func() string { return partnercentertest.DefaultClientSecret },
			}, hc, nil)
			client, err := partnercenter.NewClient(partnercenter.ClientConfig{BaseURL: srv.URL, HTTPClient: hc, Tokens: tokens})
			if err != nil {
				b.Fatal(err)
			}
			targets := targetsOf(cfg)
			var total time.Duration
			for b.Loop() {
				store := batchstate.NewStore()
				store.SetMembers(targets, time.Now())
				reader := NewReader(store, log.NewNopLogger(), limit)
				start := time.Now()
				results := reader.Read(context.Background(), client, targets, batchstate.ReadPolicy{Refresh: time.Hour, Timeout: 10 * time.Second})
				total += time.Since(start)
				for _, r := range results {
					if r.LastError != nil {
						b.Fatal(r.LastError)
					}
				}
			}
			ideal := time.Duration((batches+limit-1)/limit) * latency
			b.ReportMetric(float64(total)/float64(b.N)/float64(ideal), "x-ideal")
			b.ReportMetric(float64(dials.n.Load())/float64(b.N), "dials/op")
			t.CloseIdleConnections()
		})
	}
}

type countingDialer struct{ n atomic.Int64 }

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// selfSignedLoopback makes a certificate for 127.0.0.1 and the pool that
// trusts it.
func selfSignedLoopback(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
