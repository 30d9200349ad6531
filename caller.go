package keyhold

import "context"

// Caller is the authenticated principal behind a request.
type Caller struct {
	Principal *Principal
	TenantID  string
	GroupIDs  []string // groups the principal belongs to, directly or not
	Audience  string   // the audience its token was issued for
	ClientID  string   // appid / azp claim: the application that asked for the token
	TokenID   string   // uti claim, for the log
}

// ObjectIDs returns the ids that role assignments may name for this caller:
// the principal's own and its groups'.
func (c *Caller) ObjectIDs() []string {
	return append([]string{c.Principal.ID}, c.GroupIDs...)
}

type callerKey struct{}

// WithCaller returns a context that carries c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller carried by ctx, or nil.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}
