package partnercentertest

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// maxTokenRequestBytes bounds the form body of a token request.
	maxTokenRequestBytes = 64 << 10
	// maxAccessTokens bounds the set of live access tokens, in case a
	// client asks for a new token in a loop.
	maxAccessTokens = 10000
	// aadTimeFormat is how Azure AD writes the timestamp of an error.
	aadTimeFormat = "2006-01-02 15:04:05Z"
)

// AccessTokenPrefix starts every access token the token endpoint issues
// (a random text follows), so that a test can look for any issued token
// where none may appear, such as logs and pages.
const AccessTokenPrefix = "fake-at-"

// authState is the token endpoint's configuration and the tokens it
// issued. It is guarded by Server.mu.
type authState struct {
	clientID     string
	clientSecret string
	tenant       string

	// refreshToken is the one valid refresh token ("" = none).
	refreshToken string
	rotate       bool
	// rotations counts refresh tokens issued since SetRefreshToken.
	rotations int

	lifetime          time.Duration
	expiresInAsString bool
	failure           *tokenFailure
	// script and scriptCalls are SetTokenResponses' answers and how many
	// of them were used.
	script      []Response
	scriptCalls int

	// accessTokens maps each accepted token to its expiry; the zero time
	// means it never expires (AddAccessToken).
	accessTokens    map[string]time.Time
	lastAccessToken string

	// certificates and federatedTokens are the client assertion
	// credentials, by lower-case client ID.
	certificates    map[string]*x509.Certificate
	federatedTokens map[string]string

	// errors numbers the error answers, for their deterministic trace ids.
	errors int
}

func newAuthState() authState {
	return authState{
		clientID:          DefaultClientID,
		clientSecret:      DefaultClientSecret,
		tenant:            DefaultTenantID,
		lifetime:          DefaultTokenLifetime,
		expiresInAsString: true,
		accessTokens:      make(map[string]time.Time),
		certificates:      make(map[string]*x509.Certificate),
		federatedTokens:   make(map[string]string),
	}
}

// tokenFailure is the answer FailTokenRequests scripted.
type tokenFailure struct {
	status      int
	code        string
	description string
}

// TokenURL is the token endpoint of the Server's tenant.
func (s *Server) TokenURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.URL + "/" + s.auth.tenant + "/oauth2/token"
}

// SetCredentials replaces the one client ID and secret the token endpoint
// accepts.
func (s *Server) SetCredentials(clientID, clientSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.clientID = clientID
	s.auth.clientSecret = clientSecret
}

// SetRefreshToken makes token the one valid refresh token ("" accepts
// none). With rotate, each successful refresh_token grant answers a new
// refresh token, "rt-2", "rt-3", ..., and the one it replaces stops
// working; without it the same token is answered and stays valid.
func (s *Server) SetRefreshToken(token string, rotate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.refreshToken = token
	s.auth.rotate = rotate
	s.auth.rotations = 0
}

// SetTokenLifetime sets how long access tokens issued from now on are
// accepted. The answered expires_in is one second less, as Azure AD's
// "3599" for an hour.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.lifetime = d
}

// SetExpiresInAsString chooses between "expires_in":"3599" (true, the
// default, as the v1 endpoint sends it) and "expires_in":3599; the same
// applies to ext_expires_in, expires_on and not_before.
func (s *Server) SetExpiresInAsString(asString bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.expiresInAsString = asString
}

// ExpireTokens makes the batch endpoint reject every access token issued
// or added so far with 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.auth.accessTokens)
}

// FailTokenRequests makes the token endpoint answer every request with
// status and the body {"error":errCode,"error_description":description},
// until it is called with status 0.
func (s *Server) FailTokenRequests(status int, errCode, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		s.auth.failure = nil
		return
	}
	s.auth.failure = &tokenFailure{status: status, code: errCode, description: description}
}

// SetTokenResponses scripts the token endpoint: the n-th token request
// from now on (counting from 0) is answered as rs[n] says, and the last
// one repeats; no rs restores the endpoint's own answers. A Response with
// a nil Body and Status 0 or 200 is the endpoint's own answer (a token,
// or the failure FailTokenRequests set) after its Latency, with its
// Header, ContentType, Fault or Stream applied. Any other Response
// replaces that answer: its Body as is, or for a nil Body an OAuth error
// document {"error":"scripted_failure",...}. Format is ignored.
func (s *Server) SetTokenResponses(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.script = slices.Clone(rs)
	s.auth.scriptCalls = 0
}

// AddAccessToken makes the batch endpoint accept token, which never
// expires (until ExpireTokens), as one read from an access token file.
func (s *Server) AddAccessToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.accessTokens[token] = time.Time{}
}

// LastAccessToken is the access token most recently issued by the token
// endpoint, "" before the first, so that tests can compare it with the
// Authorization header a client sent.
func (s *Server) LastAccessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth.lastAccessToken
}

// authorized reports whether an Authorization header value carries an
// accepted, unexpired bearer token.
func (s *Server) authorized(header string) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimSpace(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	expiry, ok := s.auth.accessTokens[token]
	if !ok {
		return false
	}
	return expiry.IsZero() || s.now().Before(expiry)
}

// tokenRequest is what a token request asked for.
type tokenRequest struct {
	grant         string
	clientID      string
	clientSecret  string
	refreshToken  string
	resource      string
	scope         string
	assertion     string
	assertionType string
	// endpoint is the URL the request was posted to, which a client
	// assertion's aud must name; v2 tells the v2 endpoint from v1.
	endpoint string
	v2       bool
}

func (s *Server) serveToken(r *http.Request, tenant string, v2 bool) answer {
	s.mu.Lock()
	s.stats.tokenRequests++
	resp, scripted := s.auth.nextScripted()
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		a := plainAnswer(http.StatusMethodNotAllowed, "405 method not allowed")
		a.header.Set("Allow", http.MethodPost)
		return a
	}
	req, readErr := readTokenRequest(r)
	req.endpoint, req.v2 = s.URL+r.URL.Path, v2
	if !scripted {
		return s.answerToken(tenant, req, readErr)
	}
	if err := checkScript(resp); err != nil {
		return misconfigured(err.Error())
	}
	// net/http notices a client going away only once the request body
	// has been read, so whatever the form left is read before waiting.
	_, _ = io.Copy(io.Discard, r.Body)
	if !s.sleep(r.Context(), resp.Latency) {
		return answer{aborted: true}
	}
	var a answer
	if resp.Body == nil && (resp.Status == 0 || resp.Status == http.StatusOK) {
		a = s.answerToken(tenant, req, readErr)
	} else {
		a = scriptedTokenAnswer(resp)
	}
	for name, values := range resp.Header {
		a.header[http.CanonicalHeaderKey(name)] = slices.Clone(values)
	}
	if resp.ContentType != "" {
		a.header.Set("Content-Type", resp.ContentType)
	}
	a.fault, a.stream = resp.Fault, resp.Stream
	return a
}

// nextScripted returns the Response scripted for the next token request,
// if SetTokenResponses scripted any. It must be called with Server.mu held.
func (a *authState) nextScripted() (Response, bool) {
	if len(a.script) == 0 {
		return Response{}, false
	}
	r := a.script[min(a.scriptCalls, len(a.script)-1)]
	a.scriptCalls++
	return r, true
}

// scriptedTokenAnswer is a scripted answer that replaces the endpoint's
// own: Body as is, or an OAuth error document for Status.
func scriptedTokenAnswer(resp Response) answer {
	status := cmp.Or(resp.Status, http.StatusOK)
	body := resp.Body
	if body == nil {
		body = marshalJSON(aadErrorBody{Error: "scripted_failure", ErrorDescription: "partnercentertest: scripted " + strconv.Itoa(status)})
	}
	return jsonAnswer(status, body)
}

// answerToken is the endpoint's own answer to a token request whose form
// was read with readErr.
func (s *Server) answerToken(tenant string, req tokenRequest, readErr error) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if readErr != nil {
		return s.aadError(http.StatusBadRequest, "invalid_request", 90014,
			"AADSTS90014: The request body could not be read as a form.")
	}
	a := s.decideGrant(tenant, req)
	a.grant, a.clientID, a.resource = req.grant, req.clientID, cmp.Or(req.resource, req.scope)
	return a
}

// readTokenRequest reads the form body and, as Azure AD does, also takes
// the client credentials from HTTP Basic authentication.
func readTokenRequest(r *http.Request) (tokenRequest, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		return tokenRequest{}, fmt.Errorf("parse token request form: %w", err)
	}
	form := r.PostForm
	req := tokenRequest{
		grant:         form.Get("grant_type"),
		clientID:      form.Get("client_id"),
		clientSecret:  form.Get("client_secret"),
		refreshToken:  form.Get("refresh_token"),
		resource:      form.Get("resource"),
		scope:         form.Get("scope"),
		assertion:     form.Get("client_assertion"),
		assertionType: form.Get("client_assertion_type"),
	}
	if user, password, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1 form-encodes both before Basic auth.
		req.clientID = formUnescape(user)
		req.clientSecret = formUnescape(password)
	}
	return req, nil
}

func formUnescape(s string) string {
	if unescaped, err := url.QueryUnescape(s); err == nil {
		return unescaped
	}
	return s
}

// decideGrant answers a token request. It must be called with s.mu held.
func (s *Server) decideGrant(tenant string, req tokenRequest) answer {
	if f := s.auth.failure; f != nil {
		return jsonAnswer(f.status, marshalJSON(aadErrorBody{Error: f.code, ErrorDescription: f.description}))
	}
	if !strings.EqualFold(tenant, s.auth.tenant) {
		return s.aadError(http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf(
			"AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	}
	switch req.grant {
	case "":
		return s.missingParameter("grant_type")
	case "client_credentials":
		return s.clientCredentialsGrant(req)
	case "refresh_token":
		return s.refreshTokenGrant(req)
	}
	return s.aadError(http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf(
		"AADSTS70003: The app requested an unsupported grant type '%s'.", req.grant))
}

func (s *Server) clientCredentialsGrant(req tokenRequest) answer {
	check := s.checkClient
	if req.assertion != "" || req.assertionType != "" {
		check = func(req tokenRequest, _ bool) (answer, bool) { return s.checkAssertion(req) }
	}
	if a, ok := check(req, true); !ok {
		return a
	}
	if req.v2 {
		return s.clientCredentialsV2(req)
	}
	if req.resource == "" {
		return s.aadError(http.StatusBadRequest, "invalid_request", 50001,
			"AADSTS50001: Resource identifier is not provided.")
	}
	return s.issueToken(req.resource, "")
}

// clientCredentialsV2 answers the v2 endpoint, which takes a scope of the
// form {resource}/.default instead of a resource.
func (s *Server) clientCredentialsV2(req tokenRequest) answer {
	resource, ok := strings.CutSuffix(req.scope, "/.default")
	switch {
	case req.resource != "":
		return s.aadError(http.StatusBadRequest, "invalid_request", 901002,
			"AADSTS901002: The 'resource' request parameter is not supported.")
	case req.scope == "":
		return s.missingParameter("scope")
	case !ok || resource == "" || strings.Contains(req.scope, " "):
		return s.aadError(http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
			"AADSTS1002012: The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", req.scope))
	}
	return s.issueToken("", "")
}

func (s *Server) refreshTokenGrant(req tokenRequest) answer {
	if req.refreshToken == "" {
		return s.missingParameter("refresh_token")
	}
	if a, ok := s.checkClient(req, false); !ok {
		return a
	}
	if s.auth.refreshToken == "" || !equalSecret(req.refreshToken, s.auth.refreshToken) {
		return s.aadError(http.StatusBadRequest, "invalid_grant", 9002313,
			"AADSTS9002313: Invalid request. Request is malformed or invalid.")
	}
	if s.auth.rotate {
		s.auth.rotations++
		s.auth.refreshToken = "rt-" + strconv.Itoa(s.auth.rotations+1)
	}
	return s.issueToken(req.resource, s.auth.refreshToken)
}

// checkClient validates the client ID and secret; a refresh_token grant
// may leave the secret out (a public client), but a wrong one fails.
// It returns ok=false and the error answer when they are not accepted.
func (s *Server) checkClient(req tokenRequest, secretRequired bool) (answer, bool) {
	if a, ok := s.checkClientID(req); !ok {
		return a, false
	}
	switch {
	case req.clientSecret == "" && secretRequired:
		return s.aadError(http.StatusUnauthorized, "invalid_client", 7000218,
			"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."), false
	case req.clientSecret != "" && (!equalSecret(req.clientSecret, s.auth.clientSecret) ||
		!strings.EqualFold(req.clientID, s.auth.clientID)): // an app known by its certificate alone has no secret
		return s.aadError(http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.auth.clientID)), false
	}
	return answer{}, true
}

// checkClientID checks that the request names a known application: the
// one SetCredentials named, or one with a certificate or federated token.
func (s *Server) checkClientID(req tokenRequest) (answer, bool) {
	client := strings.ToLower(req.clientID)
	_, hasCert := s.auth.certificates[client]
	_, federated := s.auth.federatedTokens[client]
	switch {
	case req.clientID == "":
		return s.missingParameter("client_id"), false
	case !strings.EqualFold(req.clientID, s.auth.clientID) && !hasCert && !federated:
		return s.aadError(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", req.clientID, s.auth.tenant)), false
	}
	return answer{}, true
}

func equalSecret(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (s *Server) missingParameter(name string) answer {
	return s.aadError(http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf(
		"AADSTS900144: The request body must contain the following parameter: '%s'.", name))
}

// tokenResponse is a successful v1 token answer. The times are strings or
// numbers, as SetExpiresInAsString chose.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    any    `json:"expires_in"`
	ExtExpiresIn any    `json:"ext_expires_in"`
	ExpiresOn    any    `json:"expires_on"`
	NotBefore    any    `json:"not_before"`
	Resource     string `json:"resource,omitempty"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// issueToken creates an access token and answers it, with refreshToken
// when it is not "". It must be called with s.mu held.
func (s *Server) issueToken(resource, refreshToken string) answer {
	now := s.now()
	s.forgetOldTokens(now)
	token := AccessTokenPrefix + rand.Text()
	s.auth.accessTokens[token] = now.Add(s.auth.lifetime)
	s.auth.lastAccessToken = token

	expiresIn := max(int64(s.auth.lifetime/time.Second)-1, 0)
	number := func(n int64) any {
		if s.auth.expiresInAsString {
			return strconv.FormatInt(n, 10)
		}
		return n
	}
	a := jsonAnswer(http.StatusOK, marshalJSON(tokenResponse{
		TokenType:    "Bearer",
		ExpiresIn:    number(expiresIn),
		ExtExpiresIn: number(expiresIn),
		ExpiresOn:    number(now.Unix() + expiresIn),
		NotBefore:    number(now.Unix()),
		Resource:     resource,
		AccessToken:  token,
		RefreshToken: refreshToken,
	}))
	a.header.Set("Cache-Control", "no-store, no-cache")
	a.header.Set("Pragma", "no-cache")
	return a
}

// forgetOldTokens drops expired tokens and, past maxAccessTokens, any
// others, to keep the set bounded. It must be called with s.mu held.
func (s *Server) forgetOldTokens(now time.Time) {
	for token, expiry := range s.auth.accessTokens {
		if !expiry.IsZero() && !now.Before(expiry) {
			delete(s.auth.accessTokens, token)
		}
	}
	for token := range s.auth.accessTokens {
		if len(s.auth.accessTokens) < maxAccessTokens {
			break
		}
		delete(s.auth.accessTokens, token)
	}
}

// aadErrorBody is an Azure AD OAuth2 error answer.
type aadErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes,omitempty"`
	Timestamp        string `json:"timestamp,omitempty"`
	TraceID          string `json:"trace_id,omitempty"`
	CorrelationID    string `json:"correlation_id,omitempty"`
}

// aadError answers an Azure AD error. Trace and correlation ids are
// numbered rather than random so that tests can compare whole bodies.
// It must be called with s.mu held.
func (s *Server) aadError(status int, code string, aadsts int, message string) answer {
	s.auth.errors++
	timestamp := s.now().UTC().Format(aadTimeFormat)
	traceID := fmt.Sprintf("00000000-0000-0000-0000-%012d", s.auth.errors)
	correlationID := fmt.Sprintf("00000000-0000-0000-0001-%012d", s.auth.errors)
	return jsonAnswer(status, marshalJSON(aadErrorBody{
		Error: code,
		ErrorDescription: fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			message, traceID, correlationID, timestamp),
		ErrorCodes:    []int{aadsts},
		Timestamp:     timestamp,
		TraceID:       traceID,
		CorrelationID: correlationID,
	}))
}
