// Package client is a small Go client of Keyhold's HTTP APIs: the token
// endpoint, the resource manager (ARM), the directory (Graph-like) API and the
// audit log. The keyhold command line and the quickstart use it.
//
// It verifies TLS against the system roots or a CA file, never skips
// verification, sends a bearer token for the audience each call names, and
// turns Azure-shaped error bodies into *Error values that print as
// "<message> (<code>)" and carry the request id for support.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Audiences of Keyhold's surfaces, as tokens carry them.
const (
	AudienceARM   = "https://management.keyhold.internal"
	AudienceBAP   = "https://service.powerapps.keyhold.internal"
	AudienceVault = "https://vault.keyhold.internal"
	AudienceGraph = "https://graph.keyhold.internal"
)

// API versions the client sends.
const (
	APIVersionResources     = "2021-04-01"         // resource groups and providers
	APIVersionFeatures      = "2014-08-01-preview" // Microsoft.Features, as the CMK docs call it
	APIVersionAuthorization = "2022-04-01"         // role definitions and assignments
	APIVersionSubscriptions = "2020-01-01"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 1 << 20

// TokenSource hands out bearer tokens for an audience.
type TokenSource interface {
	// Token returns an access token for audience.
	Token(ctx context.Context, audience string) (string, error)
}

// Config configures a Client.
type Config struct {
	// Server is the server's public URL, such as https://127.0.0.1:8443/.
	Server string
	// CAFile is a PEM file of CA certificates to trust instead of the
	// system roots. Empty means the system roots.
	CAFile string
	// Tokens supplies bearer tokens. Nil means calls go unauthenticated,
	// which only the token endpoint accepts.
	Tokens TokenSource
	// HTTPClient overrides the HTTP client built from CAFile (tests).
	HTTPClient *http.Client
	// UserAgent is sent on every request; empty means "keyhold-client".
	UserAgent string
	// PollInterval is the wait between polls of a long operation when the
	// server sends no Retry-After; zero means two seconds.
	PollInterval time.Duration
}

// Client calls one Keyhold server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client
	tokens    TokenSource
	userAgent string
	poll      time.Duration
}

// New returns a Client for cfg. It fails if the server URL is not an
// absolute http(s) URL or the CA file cannot be read or holds no certificate.
func New(cfg Config) (*Client, error) {
	base, err := ParseServerURL(cfg.Server)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		if hc, err = NewHTTPClient(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	c := &Client{base: base, hc: hc, tokens: cfg.Tokens, userAgent: cfg.UserAgent, poll: cfg.PollInterval}
	if c.userAgent == "" {
		c.userAgent = "keyhold-client"
	}
	if c.poll <= 0 {
		c.poll = 2 * time.Second
	}
	return c, nil
}

// ParseServerURL parses a server URL and gives it a trailing slash. It fails
// for anything but an absolute http or https URL without query or fragment.
func ParseServerURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("client: no server URL given")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: server URL %q must look like https://host:port/", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// NewHTTPClient returns an HTTP client that trusts the certificates in the
// PEM file caFile, or the system roots when caFile is empty.
func NewHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("client: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// WithTokens returns a copy of c that takes its bearer tokens from ts, so
// that a TokenSource built on c (such as a CredentialSource) can serve it.
func (c *Client) WithTokens(ts TokenSource) *Client {
	cc := *c
	cc.tokens = ts
	return &cc
}

// SignedInObjectID returns the object id (oid claim) of the principal the
// client's tokens are for, read from a resource-manager token.
func (c *Client) SignedInObjectID(ctx context.Context) (string, error) {
	if c.tokens == nil {
		return "", errors.New("client: not signed in")
	}
	tok, err := c.tokens.Token(ctx, AudienceARM)
	if err != nil {
		return "", err
	}
	claims, err := Claims(tok)
	if err != nil {
		return "", err
	}
	oid, _ := claims["oid"].(string)
	if oid == "" {
		return "", errors.New("client: the access token names no object id")
	}
	return oid, nil
}

// Server returns the server URL with its trailing slash.
func (c *Client) Server() string { return c.base.String() }

// Error is an error response from the server. It prints as
// "<message> (<code>)"; RequestID names the request for support.
type Error struct {
	StatusCode int
	Code       string // the contract's error code, such as ResourceGroupNotFound
	Message    string
	RequestID  string
	Method     string
	Path       string // the request path, without the query
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// IsNotFound reports whether err is an *Error with status 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// StatusCode returns the HTTP status of err if it is an *Error, else 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// Response is what a call returns besides its decoded body.
type Response struct {
	StatusCode int
	Header     http.Header
	RequestID  string
}

// Do sends method to path (relative to the server URL, query included) with
// a bearer token for audience (none if audience is empty), in as its JSON
// body if not nil, and decodes a JSON response into out if not nil. A status
// of 400 or more comes back as an *Error.
func (c *Client) Do(ctx context.Context, method, audience, path string, in, out any) (*Response, error) {
	return c.doWith(ctx, method, audience, path, in, nil, out)
}

// doWith is Do with extra request headers in hdr (If-Match, Prefer).
func (c *Client) doWith(ctx context.Context, method, audience, path string, in any, hdr http.Header, out any) (*Response, error) {
	u, err := c.resolve(path)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	return c.send(req, audience, out)
}

// authorize adds a bearer token for audience to req; errors are the token
// source's, or "not signed in" without one.
func (c *Client) authorize(req *http.Request, audience string) error {
	if c.tokens == nil {
		return errors.New("client: not signed in")
	}
	tok, err := c.tokens.Token(req.Context(), audience)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// roundTrip sends req; a server that cannot be reached is an error that
// names its host.
func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: cannot reach the server at %s: %w", req.URL.Host, unwrapURLError(err))
	}
	return resp, nil
}

// send adds the common headers and a token, sends req and decodes the answer.
func (c *Client) send(req *http.Request, audience string, out any) (*Response, error) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	clientID := NewUUID()
	req.Header.Set("x-ms-client-request-id", clientID)
	if audience != "" {
		if err := c.authorize(req, audience); err != nil {
			return nil, err
		}
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header, RequestID: requestID(resp.Header)}
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		e := decodeError(resp, b, r.RequestID)
		if e.RequestID == "" {
			e.RequestID = clientID // every error names some request
		}
		r.RequestID = e.RequestID
		return r, e
	}
	if r.RequestID == "" {
		r.RequestID = clientID
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, resp.Body)
		return r, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, fmt.Errorf("client: reading response to %s %s: %w", req.Method, req.URL.Path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return r, fmt.Errorf("client: decoding response to %s %s (request id %s): %w", req.Method, req.URL.Path, r.RequestID, err)
	}
	return r, nil
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the whole
// URL, query included.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// requestID returns the server's id of a request from its headers, or "".
func requestID(h http.Header) string {
	for _, k := range []string{"x-ms-request-id", "request-id", "x-request-id", "x-ms-correlation-request-id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// decodeError reads an Azure error body ({"error":{"code","message"}}) or an
// OAuth one ({"error":"...","error_description":"..."}).
func decodeError(resp *http.Response, body []byte, reqID string) *Error {
	e := &Error{StatusCode: resp.StatusCode, RequestID: reqID, Method: resp.Request.Method, Path: resp.Request.URL.Path}
	var azure struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"` // Graph's
			} `json:"innerError"`
		} `json:"error"`
	}
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	switch {
	case json.Unmarshal(body, &azure) == nil && (azure.Error.Code != "" || azure.Error.Message != ""):
		e.Code, e.Message = azure.Error.Code, azure.Error.Message
		if id := azure.Error.InnerError.RequestID; id != "" && reqID == "" {
			e.RequestID = id
		}
	case json.Unmarshal(body, &oauth) == nil && oauth.Error != "":
		e.Code, e.Message = oauth.Error, oauth.Description
	}
	if e.Code == "" {
		e.Code = resp.Header.Get("x-ms-error-code")
	}
	if e.Code == "" {
		e.Code = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("the server answered %s %s with %d %s", e.Method, e.Path, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return e
}

// resolve turns a path, or an absolute URL on the same server (a nextLink),
// into a URL. Absolute URLs elsewhere are refused so that a bearer token
// never travels to another host.
func (c *Client) resolve(path string) (*url.URL, error) {
	if strings.HasPrefix(path, "https://") || strings.HasPrefix(path, "http://") {
		u, err := url.Parse(path)
		if err != nil {
			return nil, fmt.Errorf("client: bad link %q: %w", path, err)
		}
		if u.Scheme != c.base.Scheme || !strings.EqualFold(u.Host, c.base.Host) {
			return nil, fmt.Errorf("client: refusing to follow a link to %s://%s, which is not the server", u.Scheme, u.Host)
		}
		return u, nil
	}
	u, err := url.Parse(strings.TrimPrefix(path, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: bad path %q: %w", path, err)
	}
	return c.base.ResolveReference(u), nil
}

// page is one page of an ARM or Graph list.
type page[T any] struct {
	Value         []T    `json:"value"`
	NextLink      string `json:"nextLink"`
	ODataNextLink string `json:"@odata.nextLink"`
}

// List gets path and every page after it (ARM's nextLink, Graph's
// @odata.nextLink) and returns all values.
func List[T any](ctx context.Context, c *Client, audience, path string) ([]T, error) {
	var all []T
	for next, pages := path, 0; next != ""; pages++ {
		if pages == 10000 {
			return nil, errors.New("client: the server returned more than 10000 pages")
		}
		var p page[T]
		if _, err := c.Do(ctx, http.MethodGet, audience, next, nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Value...)
		next = p.NextLink
		if next == "" {
			next = p.ODataNextLink
		}
	}
	return all, nil
}

// WaitLocation follows an asynchronous operation that answered resp: it
// polls the Azure-AsyncOperation or Location URL until the operation ends,
// calling tick (if not nil) before each poll. It returns nil at once if resp
// names no such URL, and the operation's error if it failed.
func (c *Client) WaitLocation(ctx context.Context, audience string, resp *Response, tick func()) error {
	if resp == nil {
		return nil
	}
	if loc := resp.Header.Get("Azure-AsyncOperation"); loc != "" {
		return c.waitStatus(ctx, audience, loc, resp.Header, tick)
	}
	loc := resp.Header.Get("Location")
	if loc == "" || resp.StatusCode != http.StatusAccepted {
		return nil
	}
	h := resp.Header
	for {
		if err := c.sleep(ctx, h, tick); err != nil {
			return err
		}
		r, err := c.Do(ctx, http.MethodGet, audience, loc, nil, nil)
		if err != nil {
			return err
		}
		if r.StatusCode != http.StatusAccepted {
			return nil
		}
		h = r.Header
		if l := r.Header.Get("Location"); l != "" {
			loc = l
		}
	}
}

// waitStatus polls an Azure-AsyncOperation URL until its status is final.
func (c *Client) waitStatus(ctx context.Context, audience, loc string, h http.Header, tick func()) error {
	for {
		if err := c.sleep(ctx, h, tick); err != nil {
			return err
		}
		var op struct {
			Status string `json:"status"`
			Error  *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		r, err := c.Do(ctx, http.MethodGet, audience, loc, nil, &op)
		if err != nil {
			return err
		}
		switch strings.ToLower(op.Status) {
		case "succeeded":
			return nil
		case "failed", "canceled", "cancelled":
			e := &Error{StatusCode: r.StatusCode, Code: "OperationFailed", Message: "the operation " + strings.ToLower(op.Status), RequestID: r.RequestID, Method: http.MethodGet, Path: loc}
			if op.Error != nil {
				e.Code, e.Message = op.Error.Code, op.Error.Message
			}
			return e
		}
		h = r.Header
	}
}

// Poll calls check every poll interval, calling tick before each wait, until
// check reports done or fails or ctx ends.
func (c *Client) Poll(ctx context.Context, tick func(), check func(ctx context.Context) (done bool, err error)) error {
	for {
		done, err := check(ctx)
		if err != nil || done {
			return err
		}
		if err := c.sleep(ctx, nil, tick); err != nil {
			return err
		}
	}
}

// sleep waits as long as Retry-After in h asks (capped at a minute) or the
// poll interval, ticking every tenth of a second so that a spinner moves.
func (c *Client) sleep(ctx context.Context, h http.Header, tick func()) error {
	d := c.poll
	if h != nil {
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
			d = min(time.Duration(s)*time.Second, time.Minute)
		}
	}
	deadline := time.Now().Add(d)
	for {
		if tick != nil {
			tick()
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(left, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// NewUUID returns a random version 4 UUID, as request ids and role
// assignment names are.
func NewUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// pathf formats a path, escaping each argument as one path segment.
func pathf(format string, args ...string) string {
	esc := make([]any, len(args))
	for i, a := range args {
		esc[i] = url.PathEscape(a)
	}
	return fmt.Sprintf(format, esc...)
}
