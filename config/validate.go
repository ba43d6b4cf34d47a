package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
)

// Limits the validation enforces.
const (
	// MaxConcurrentRequestsLimit bounds partner_center.max_concurrent_requests.
	MaxConcurrentRequestsLimit = 64
	// maxSecretFileSize guards against client_secret_file pointing at the
	// wrong file (a log, /dev/zero); real secrets are under 100 bytes.
	maxSecretFileSize = 64 << 10
)

var (
	apiVersionPattern = regexp.MustCompile(`^v[0-9]+(\.[0-9]+)?$`)
	// domainPattern accepts DNS names such as contoso.onmicrosoft.com.
	domainPattern = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$`)
)

// applyDerivedDefaults fills in the defaults that depend on other fields
// or on the environment. Static defaults come from defaultConfig.
func applyDerivedDefaults(c *Config) {
	// The environment first: it may choose the credential, and the
	// credential chooses the token endpoint's version.
	applyEnvDefaults(&c.Auth, os.Getenv)
	applyCloud(c)
}

// applyEnvDefaults takes the variables the Azure Workload Identity webhook
// injects into a pod, read when the file is loaded (so a reload sees a
// changed environment only after a restart, as the pod's environment never
// changes). AZURE_FEDERATED_TOKEN_FILE is used only when the file sets no
// credential at all, so that a client secret in a pod that also has a
// workload identity keeps working; AZURE_CLIENT_ID and AZURE_TENANT_ID
// fill in client_id and tenant_id only for workload identity, as they
// name that identity's application.
func applyEnvDefaults(a *Auth, getenv func(string) string) {
	noCredential := a.ClientSecret == "" && a.ClientSecretFile == "" && a.RefreshTokenFile == "" &&
		a.AccessTokenFile == "" && a.ClientCertificateFile == "" && a.FederatedTokenFile == ""
	if noCredential {
		a.FederatedTokenFile = getenv("AZURE_FEDERATED_TOKEN_FILE")
	}
	if a.FederatedTokenFile == "" {
		return
	}
	if a.ClientID == "" {
		a.ClientID = getenv("AZURE_CLIENT_ID")
	}
	if a.TenantID == "" {
		a.TenantID = getenv("AZURE_TENANT_ID")
	}
}

// resolvePaths makes the credential file paths relative to baseDir, the
// configuration file's directory, rather than to the working directory.
func resolvePaths(c *Config, baseDir string) {
	a := &c.Auth
	paths := []*string{
		&a.ClientSecretFile, &a.RefreshTokenFile, &a.AccessTokenFile, &a.ClientCertificateFile,
		&a.ClientCertificatePasswordFile, &a.FederatedTokenFile,
	}
	for i := range c.BatchFiles {
		paths = append(paths, &c.BatchFiles[i])
	}
	for i := range c.Intake.BearerTokenFiles {
		paths = append(paths, &c.Intake.BearerTokenFiles[i])
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
	c.PartnerCenter.HTTPClient.TLSConfig.SetDirectory(baseDir)
}

// normalize puts a valid Config into the canonical form documented in the
// package comment.
func normalize(c *Config) {
	c.PartnerCenter.BaseURL = strings.TrimRight(c.PartnerCenter.BaseURL, "/")
	for i := range c.Customers {
		cust := &c.Customers[i]
		cust.ID = strings.ToLower(cust.ID)
		for j := range cust.Batches {
			cust.Batches[j] = strings.ToLower(cust.Batches[j])
		}
	}
}

// validator checks a decoded Config and adds its problems to the decoder's.
type validator struct {
	*findings
}

// report adds a problem with the field at path, unless that field or one
// enclosing it could not be decoded.
func (v validator) report(path, format string, args ...any) {
	if v.unusable(path) {
		return
	}
	v.errs = append(v.errs, &FieldError{Line: v.pos.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err returns all problems in file order, joined by newlines, or nil.
func (v validator) err(filename string) error {
	if len(v.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(v.errs, func(a, b *FieldError) int { return a.Line - b.Line })
	errs := make([]error, len(v.errs))
	for i, e := range v.errs {
		e.File = filename
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (v validator) config(c *Config) {
	v.cloud(c.Cloud)
	v.partnerCenter(c.PartnerCenter)
	v.auth(c.Auth)
	if c.MaxFailedDevicesPerBatch < 0 {
		v.report("max_failed_devices_per_batch", "must not be negative, got %d", c.MaxFailedDevicesPerBatch)
	}
	v.batchFiles(c.BatchFiles)
	v.probe(c.Probe)
	v.intake(c.Intake)
	v.customers(c.Customers)
}

// intake checks the intake API's settings. The token files are read by
// the intake itself, whenever they change, so that a rotated token needs
// no reload; an empty entry is refused while decoding.
func (v validator) intake(in Intake) {
	if in.MaxBatches < 1 {
		v.report("intake.max_batches", "must be at least 1, got %d", in.MaxBatches)
	}
}

// probe checks the admission settings of unlisted batches. They are
// checked even while no opt-in uses them, so that turning the opt-in on
// cannot make a file invalid.
func (v validator) probe(p Probe) {
	if p.ForgetUnprobedAfter <= 0 {
		v.report("probe.forget_unprobed_after", "must be greater than 0, got %s", p.ForgetUnprobedAfter)
	}
	if p.MaxAdmissionsPerMinute < 1 {
		v.report("probe.max_admissions_per_minute", "must be at least 1, got %d", p.MaxAdmissionsPerMinute)
	}
}

// batchFiles checks that each glob is one filepath.Match understands; the
// files themselves are read by the batchfiles package.
func (v validator) batchFiles(globs []string) {
	for i, g := range globs {
		path := indexPath("batch_files", i)
		if v.unusable(path) {
			continue
		}
		if _, err := filepath.Match(g, ""); err != nil {
			v.report(path, "%q is not a valid glob pattern", g)
		}
	}
}

func (v validator) partnerCenter(pc PartnerCenter) {
	v.endpointURL("partner_center.base_url", pc.BaseURL, false)
	if !apiVersionPattern.MatchString(pc.APIVersion) {
		v.report("partner_center.api_version", "%q is not an API version such as v1", pc.APIVersion)
	}
	if pc.RequestTimeout <= 0 {
		v.report("partner_center.request_timeout", "must be greater than 0, got %s", pc.RequestTimeout)
	}
	if pc.RefreshInterval < 0 {
		v.report("partner_center.refresh_interval", "must not be negative, got %s", pc.RefreshInterval)
	}
	if pc.MaxConcurrentRequests < 1 || pc.MaxConcurrentRequests > MaxConcurrentRequestsLimit {
		v.report("partner_center.max_concurrent_requests", "must be between 1 and %d, got %d", MaxConcurrentRequestsLimit, pc.MaxConcurrentRequests)
	}
	if pc.MaxResponseSize <= 0 {
		v.report("partner_center.max_response_size", "must be greater than 0, got %d", pc.MaxResponseSize)
	}
	if pc.MaxRetryAfter <= 0 {
		v.report("partner_center.max_retry_after", "must be greater than 0, got %s", pc.MaxRetryAfter)
	}
	v.httpClient(pc.HTTPClient)
}

// endpointURL checks a URL the exporter sends credentials to: https, or
// plain http to a loopback host for tests and local proxies. Messages do
// not repeat the URL, which might carry a password.
func (v validator) endpointURL(path, raw string, allowQuery bool) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.report(path, "not a valid URL")
	case u.Scheme == "" || u.Host == "":
		v.report(path, "must be an absolute URL such as https://host")
	case u.User != nil:
		v.report(path, "must not contain a user name or password")
	case !partnercenter.PlainHTTPAllowed(u):
		v.report(path, "must use https (http is allowed only for loopback hosts)")
	case !allowQuery && (u.RawQuery != "" || u.ForceQuery):
		v.report(path, "must not have a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		v.report(path, "must not have a fragment")
	}
}

func (v validator) auth(a Auth) {
	v.credentialSources(a)
	if a.AccessTokenFile == "" {
		// The token endpoint needs the application and a place to ask.
		switch {
		case a.ClientID == "":
			v.report("auth.client_id", "missing (required unless access_token_file is set)")
		case !partnercenter.ValidGUID(a.ClientID):
			v.report("auth.client_id", "%q is not a GUID", a.ClientID)
		}
		if a.TokenURL == "" {
			v.report("auth.tenant_id", "missing (required unless token_url or access_token_file is set)")
		}
	}
	if a.TenantID != "" && !partnercenter.ValidGUID(a.TenantID) && !domainPattern.MatchString(a.TenantID) {
		v.report("auth.tenant_id", "%q is neither a GUID nor a domain name", a.TenantID)
	}
	if a.TokenURL != "" {
		v.endpointURL("auth.token_url", a.TokenURL, true)
	}
	if a.SendCertificateChain && a.ClientCertificateFile == "" {
		v.report("auth.send_certificate_chain", "applies only with client_certificate_file")
	}
	if a.ClientCertificatePasswordFile != "" && a.ClientCertificateFile == "" {
		v.report("auth.client_certificate_password_file", "applies only with client_certificate_file")
	}
}

// credentialSources checks that the credential fields make one of the
// modes described at AuthMode.
func (v validator) credentialSources(a Auth) {
	set := v.inFileOrder(map[string]bool{
		"client_secret":           a.ClientSecret != "",
		"client_secret_file":      a.ClientSecretFile != "",
		"refresh_token_file":      a.RefreshTokenFile != "",
		"access_token_file":       a.AccessTokenFile != "",
		"client_certificate_file": a.ClientCertificateFile != "",
		"federated_token_file":    a.FederatedTokenFile != "",
	})
	alone := slices.IndexFunc(set, func(key string) bool { return slices.Contains(aloneKeys, key) })
	switch {
	case len(set) == 0 && !v.anyUnusable(credentialKeys):
		v.report("auth", "no credential source: set client_secret or client_secret_file, "+
			"refresh_token_file (alone or with a client secret), access_token_file, "+
			"client_certificate_file or federated_token_file")
	case alone >= 0 && len(set) > 1:
		v.report("auth."+set[len(set)-1], "more than one credential source: %s (%s must be used alone)",
			strings.Join(set, ", "), set[alone])
	case a.ClientSecret != "" && a.ClientSecretFile != "":
		secrets := v.inFileOrder(map[string]bool{"client_secret": true, "client_secret_file": true})
		v.report("auth."+secrets[1], "more than one credential source: %s (use one of them)", strings.Join(secrets, ", "))
	}
}

// credentialKeys are the auth keys that name a credential source;
// aloneKeys those that allow no other.
var (
	credentialKeys = []string{
		"client_secret", "client_secret_file", "refresh_token_file", "access_token_file",
		"client_certificate_file", "federated_token_file",
	}
	aloneKeys = []string{"access_token_file", "client_certificate_file", "federated_token_file"}
)

// anyUnusable reports whether one of the auth keys had a value that could
// not be decoded; "no credential source" would then be misleading.
func (v validator) anyUnusable(authKeys []string) bool {
	return slices.ContainsFunc(authKeys, func(key string) bool { return v.unusable("auth." + key) })
}

// inFileOrder returns the auth keys that are set, ordered by their line.
func (v validator) inFileOrder(isSet map[string]bool) []string {
	var keys []string
	for key, set := range isSet {
		if set {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := v.pos.line("auth."+a) - v.pos.line("auth."+b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys
}

// customers checks the IDs. Duplicates are compared case-insensitively,
// and a batch may be listed only once in the whole file.
func (v validator) customers(cs []Customer) {
	customerAt := map[string]string{} // lower-case id -> path of its first use
	batchAt := map[string]string{}
	for i, c := range cs {
		path := indexPath("customers", i)
		if v.unusable(path) {
			continue
		}
		v.uniqueGUID(path+".id", c.ID, customerAt, "is already used by")
		for j, b := range c.Batches {
			v.uniqueGUID(indexPath(path+".batches", j), b, batchAt, "is already listed at")
		}
	}
}

// uniqueGUID checks that id is a GUID not seen before in firstAt.
func (v validator) uniqueGUID(path, id string, firstAt map[string]string, dupVerb string) {
	if v.unusable(path) {
		return
	}
	switch key := strings.ToLower(id); {
	case id == "":
		v.report(path, "missing")
	case !partnercenter.ValidGUID(id):
		v.report(path, "%q is not a GUID", id)
	case firstAt[key] != "":
		first := firstAt[key]
		v.report(path, "%q %s %s (line %d)", id, dupVerb, first, v.pos.line(first))
	default:
		firstAt[key] = path
	}
}

// secretFiles reads client_secret_file into ClientSecret and checks that
// the token files can be read. Messages name the file, never its content.
func (v validator) secretFiles(a *Auth) {
	if a.ClientSecretFile != "" {
		secret, err := readSecretFile(a.ClientSecretFile)
		if err != nil {
			v.report("auth.client_secret_file", "%v", err)
		} else {
			a.ClientSecret = Secret(secret)
		}
	}
	if a.ClientCertificateFile != "" {
		v.clientCertificate(a.ClientCertificateFile, a.ClientCertificatePasswordFile)
	}
	tokenFiles := []struct{ path, name string }{
		{"auth.refresh_token_file", a.RefreshTokenFile},
		{"auth.access_token_file", a.AccessTokenFile},
		{"auth.federated_token_file", a.FederatedTokenFile},
	}
	for _, tf := range tokenFiles {
		if tf.name == "" {
			continue
		}
		if err := checkReadable(tf.name); err != nil {
			v.report(tf.path, "%v", err)
		}
	}
}

// clientCertificate checks that the certificate file can be used now, so
// that --config.check catches a wrong file; the token source reads it
// again at each token request.
func (v validator) clientCertificate(name, passwordFile string) {
	const path = "auth.client_certificate_file"
	if err := checkReadable(name); err != nil {
		v.report(path, "%v", err)
		return
	}
	if passwordFile != "" {
		if err := checkReadable(passwordFile); err != nil {
			v.report("auth.client_certificate_password_file", "%v", err)
			return
		}
	}
	if _, err := auth.ReadClientCertificate(name, passwordFile); err != nil {
		v.report(path, "%v", err)
	}
}

// readSecretFile returns the file's content without its trailing newline.
func readSecretFile(name string) (string, error) {
	f, err := openRegularFile(name)
	if err != nil {
		return "", err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	closeErr := f.Close()
	switch {
	case err != nil:
		return "", readError(name, err)
	case closeErr != nil:
		return "", readError(name, closeErr)
	case len(data) > maxSecretFileSize:
		return "", fmt.Errorf("%q is larger than %d KiB", name, maxSecretFileSize>>10)
	}
	secret := strings.TrimRight(string(data), "\r\n")
	if secret == "" {
		return "", fmt.Errorf("%q is empty", name)
	}
	return secret, nil
}

// checkReadable makes sure the file exists, is not a directory and may be
// opened for reading.
func checkReadable(name string) error {
	f, err := openRegularFile(name)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return readError(name, err)
	}
	return nil
}

// openRegularFile opens name for reading and refuses a directory, which
// os.Open would accept.
func openRegularFile(name string) (*os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, readError(name, err)
	}
	info, err := f.Stat()
	switch {
	case err != nil:
		err = readError(name, err)
	case info.IsDir():
		err = fmt.Errorf("%q is a directory", name)
	default:
		return f, nil
	}
	_ = f.Close() // already failing; a close error would add nothing
	return nil, err
}

// readError says why name could not be read without repeating the path
// that *fs.PathError would add.
func readError(name string, err error) error {
	if pathErr, ok := errors.AsType[*fs.PathError](err); ok {
		err = pathErr.Err
	}
	return fmt.Errorf("cannot read %q: %w", name, err)
}
