package arm

import (
	"context"
	"sync"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

// commitHooks collects the functions to run once a request's transaction
// has committed.
type commitHooks struct {
	mu  sync.Mutex
	fns []func()
}

type commitKey struct{}

// withCommitHooks returns a context in which OnCommit defers its function,
// and the hooks to run after the transaction commits.
func withCommitHooks(ctx context.Context) (context.Context, *commitHooks) {
	h := &commitHooks{}
	return context.WithValue(ctx, commitKey{}, h), h
}

// run calls the collected functions in the order they were registered.
func (h *commitHooks) run() {
	h.mu.Lock()
	fns := h.fns
	h.fns = nil
	h.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// OnCommit runs fn after the transaction of the request in ctx commits, and
// never if it rolls back. Resource types call it from Put, Patch and Delete
// to publish events, so that a subscriber that re-reads the store on an
// event sees the change. Outside a request's transaction fn runs at once.
func OnCommit(ctx context.Context, fn func()) {
	h, _ := ctx.Value(commitKey{}).(*commitHooks)
	if h == nil {
		fn()
		return
	}
	h.mu.Lock()
	h.fns = append(h.fns, fn)
	h.mu.Unlock()
}

// publishAssignments tells the event bus, if there is one, that the role
// assignments as were created or deleted. Call it after the commit.
func (s *Server) publishAssignments(ctx context.Context, as []*keyhold.RoleAssignment, detail string) {
	if s.events == nil {
		return
	}
	for _, a := range as {
		s.events.Publish(ctx, events.Event{
			Kind: events.RoleAssignmentChanged, TenantID: a.TenantID, Scope: a.Scope, Subject: a.PrincipalID,
			Detail: detail + " role assignment " + a.Name,
		})
	}
}
