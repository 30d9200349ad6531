package admin

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

type auditForm struct {
	Principal, Scope, Since, Until string
}

type auditView struct {
	Form    auditForm
	Errors  map[string]string
	Records []*keyhold.AuditRecord
}

// auditPage lists audit records with filters; the audit API decides who
// may read them.
func (a *Admin) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := auditForm{Principal: strings.TrimSpace(q.Get("principal")), Scope: strings.TrimSpace(q.Get("scope")),
		Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until"))}
	v := auditView{Form: f, Errors: map[string]string{}}
	aq := client.AuditQuery{Principal: f.Principal, Scope: f.Scope, Top: 200, Newest: true}
	if f.Principal != "" && !guidRE.MatchString(f.Principal) {
		v.Errors["principal"] = "Enter a principal's object id (a GUID)."
	}
	if f.Scope != "" && !strings.HasPrefix(f.Scope, "/") {
		v.Errors["scope"] = "A scope starts with /, such as /subscriptions/{id}."
	}
	parse := func(field, s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			v.Errors[field] = "Enter a date as YYYY-MM-DD."
		}
		return t
	}
	aq.Since = parse("since", f.Since)
	if aq.Until = parse("until", f.Until); !aq.Until.IsZero() {
		aq.Until = aq.Until.Add(24 * time.Hour)
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "audit", v)
		return
	}
	recs, err := a.client(s).ListAudit(r.Context(), aq)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	// The latest 200, newest first: what reads best on a page.
	v.Records = recs
	a.render(w, r, s, http.StatusOK, "audit", v)
}

// changeKey moves an environment to another policy's key in one step (a
// link while linked), after confirmation.
func (a *Admin) changeKey(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	envID, policyID := r.PathValue("id"), r.PostFormValue("policy")
	back := "/admin/environments/" + url.PathEscape(envID)
	// refuse shows the environment page again with why next to the field.
	refuse := func(status int, msg string) {
		v, err := a.loadEnvironment(r, s)
		if err != nil {
			a.fail(w, r, s, err)
			return
		}
		v.ChangeKeyError = msg
		a.render(w, r, s, status, "environment", v)
	}
	if !client.IsPolicyID(policyID) {
		refuse(http.StatusBadRequest, "Choose the policy whose key the environment should use.")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Change key",
			Message: "The environment's data will be protected by the key of " + policyName(policyID) + ". It stays available during the change; the old policy no longer applies.",
			Action:  back + "/changekey", Button: "Change key", Back: back, Fields: map[string][]string{"policy": {policyID}}})
		return
	}
	p, err := c.GetPolicy(ctx, policyID)
	if err == nil {
		err = a.lifecycle(ctx, c, envID, "link", p.Properties.SystemID)
	}
	var ce *client.Error
	if err != nil && asClientError(err, &ce) && ce.StatusCode < 500 {
		refuse(ce.StatusCode, ce.Message)
		return
	}
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.flash(s, "The key is being changed to "+p.Name+"'s.")
	http.Redirect(w, r, back, http.StatusSeeOther)
}
