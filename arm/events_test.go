package arm

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

// drain returns the events waiting on sub without blocking.
func drain(sub *events.Subscription) []events.Event {
	var out []events.Event
	for {
		select {
		case e := <-sub.C():
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestRoleAssignmentEvents(t *testing.T) {
	e := newEnv(t)
	bus := events.New(nil)
	e.srv.events = bus
	sub := bus.Subscribe(func(ev events.Event) bool { return ev.Kind == events.RoleAssignmentChanged })
	defer sub.Close()

	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	const ra1, ra2 = "5e000000-0000-0000-0000-0000000000e1", "5e000000-0000-0000-0000-0000000000e2"
	type want struct{ scope, subject string }
	steps := []struct {
		name   string
		do     func()
		events []want
	}{
		{"create", func() {
			e.mustStatus(e.do(ownerID, http.MethodPut, raPath(groupPath, ra1), raBody(readerRole, readerID)), 201)
		},
			[]want{{groupPath, readerID}}},
		{"idempotent create publishes nothing", func() {
			e.mustStatus(e.do(ownerID, http.MethodPut, raPath(groupPath, ra1), raBody(readerRole, readerID)), 201)
		}, nil},
		{"refused create publishes nothing", func() {
			e.mustStatus(e.do(readerID, http.MethodPut, raPath(groupPath, ra2), raBody(readerRole, appID)), 403)
		}, nil},
		{"delete", func() { e.mustStatus(e.do(ownerID, http.MethodDelete, raPath(groupPath, ra1), nil), 200) },
			[]want{{groupPath, readerID}}},
		{"delete of a missing one publishes nothing", func() { e.mustStatus(e.do(ownerID, http.MethodDelete, raPath(groupPath, ra1), nil), 204) }, nil},
		{"group deletion cascades", func() {
			e.mustStatus(e.do(ownerID, http.MethodPut, raPath(groupPath, ra2), raBody(readerRole, appID)), 201)
			drain(sub)
			e.mustStatus(e.do(ownerID, http.MethodDelete, groupPath, nil), 202)
		}, []want{{groupPath, appID}}},
	}
	for _, st := range steps {
		st.do()
		got := drain(sub)
		if len(got) != len(st.events) {
			t.Fatalf("%s: got events %+v, want %+v", st.name, got, st.events)
		}
		for i, w := range st.events {
			if got[i].Scope != w.scope || got[i].Subject != w.subject || got[i].TenantID != tenantA {
				t.Errorf("%s: event %d = %+v, want scope %s subject %s", st.name, i, got[i], w.scope, w.subject)
			}
		}
	}
}

func TestResourceDeletionPublishesItsAssignments(t *testing.T) {
	e := newEnv(t)
	bus := events.New(nil)
	e.srv.events = bus
	sub := bus.Subscribe(nil)
	defer sub.Close()
	e.registerTestProvider(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	w := groupPath + "/providers/Keyhold.Test/widgets/w1"
	e.mustStatus(e.do(ownerID, http.MethodPut, w+"?api-version=2024-01-01", map[string]any{"location": "westeurope", "properties": map[string]any{"size": 1}}), 201)
	e.mustStatus(e.do(ownerID, http.MethodPut, raPath(w, "5e000000-0000-0000-0000-0000000000e3"), raBody(readerRole, readerID)), 201)
	drain(sub)
	e.mustStatus(e.do(ownerID, http.MethodDelete, w+"?api-version=2024-01-01", nil), 200)
	got := drain(sub)
	if len(got) != 1 || got[0].Kind != events.RoleAssignmentChanged || got[0].Scope != w || got[0].Subject != readerID {
		t.Errorf("events after deleting the widget: %+v", got)
	}
}

// hooked is a resource type whose Put asks for a commit hook and fails when
// properties.fail is true, after asking.
type hooked struct {
	widgets
	store keyhold.Store
	ran   chan string
}

func (hooked) Type() string    { return "Keyhold.Test/hooked" }
func (hooked) Routes() []Route { return nil }

func (h hooked) Put(ctx context.Context, req *PutRequest) (*keyhold.Resource, int, error) {
	OnCommit(ctx, func() {
		// By now the resource must be readable outside the transaction.
		_, err := h.store.GetResource(context.Background(), req.ID.String())
		h.ran <- req.ID.Name() + " " + keyhold.ErrorCode(err)
	})
	if string(req.Resource.Properties) == `{"fail":true}` {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "Refused", "refused")
	}
	return req.Resource, 0, nil
}

func TestOnCommit(t *testing.T) {
	e := newEnv(t)
	h := hooked{store: e.store, ran: make(chan string, 4)}
	e.srv.Register(h)
	e.registerTestProvider(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	base := groupPath + "/providers/Keyhold.Test/hooked/"
	e.mustStatus(e.do(ownerID, http.MethodPut, base+"bad?api-version=2024-01-01", map[string]any{"location": "westeurope", "properties": map[string]any{"fail": true}}), 400)
	e.mustStatus(e.do(ownerID, http.MethodPut, base+"good?api-version=2024-01-01", map[string]any{"location": "westeurope", "properties": map[string]any{}}), 201)
	select {
	case got := <-h.ran:
		if got != "good " {
			t.Errorf("hook ran as %q, want %q (after the commit of the good PUT only)", got, "good ")
		}
	case <-time.After(time.Second):
		t.Fatal("the hook never ran")
	}
	if len(h.ran) != 0 {
		t.Errorf("hooks ran %d more times", len(h.ran))
	}

	ran := false
	OnCommit(context.Background(), func() { ran = true })
	if !ran {
		t.Error("OnCommit outside a request did not run its function at once")
	}
}
