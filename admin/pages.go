package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

func (a *Admin) routes() {
	m := http.NewServeMux()
	m.Handle("GET /admin/static/", http.StripPrefix("/admin/", http.FileServerFS(staticFS)))
	m.HandleFunc("GET /admin/signin", a.signInPage)
	m.HandleFunc("POST /admin/signin", a.signIn)
	m.HandleFunc("POST /admin/signout", a.page(false, a.signOut))
	m.HandleFunc("GET /admin/{$}", a.page(false, a.home))
	m.HandleFunc("GET /admin/environments", a.page(true, a.environments))
	m.HandleFunc("GET /admin/environments/{id}", a.page(true, show(a, "environment", a.loadEnvironment)))
	m.HandleFunc("GET /admin/environments/{id}/status", a.page(true, a.environmentStatus))
	m.HandleFunc("POST /admin/environments/{id}/reenable", a.page(true, a.reenable))
	m.HandleFunc("GET /admin/policies", a.page(true, a.policies))
	m.HandleFunc("GET /admin/policy", a.page(true, a.policyPage))
	m.HandleFunc("POST /admin/policy/add", a.page(true, a.addEnvironments))
	m.HandleFunc("POST /admin/policy/remove", a.page(true, a.removeEnvironment))
	m.HandleFunc("POST /admin/environments/{id}/changekey", a.page(true, a.changeKey))
	m.HandleFunc("GET /admin/audit", a.page(false, a.auditPage))
	a.vaultRoutes(m)
	a.setupRoutes(m)
	m.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		a.render(w, r, a.sessionFrom(r), http.StatusNotFound, "error", errorView{Title: "Page not found", Message: "There is no page at " + r.URL.Path + "."})
	})
	a.mux = m
}

// view is what every page template gets.
type view struct {
	Title   string
	Session *session
	CSRF    string
	Flash   string
	Nav     string
	Data    any
}

type errorView struct {
	Title   string
	Message string
}

// render writes the named page; a template failure is logged and answered
// with a plain error page, never a stack trace.
func (a *Admin) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, data any) {
	t := a.tmpl[name]
	v := view{Session: s, Data: data, Nav: name}
	if ev, ok := data.(errorView); ok {
		v.Title = ev.Title
	}
	if s != nil {
		v.CSRF = s.csrf
		v.Flash = a.popFlash(r.Context(), s)
	}
	var buf strings.Builder
	if t == nil {
		a.cfg.Logger.Error("admin: no template", "name", name)
		http.Error(w, "This page is not available.", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, v); err != nil {
		a.cfg.Logger.Error("admin: rendering a page failed", "page", name, "err", err.Error())
		http.Error(w, "This page could not be shown. Try again.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(buf.String()))
}

// page wraps a handler that needs a signed-in person (and, with platform,
// one of the roles of the admin center), and checks CSRF on every post.
// show is a page that loads its view with load and renders it as template
// name; a failed load is shown by fail.
func show[T any](a *Admin, name string, load func(*http.Request, *session) (T, error)) func(http.ResponseWriter, *http.Request, *session) {
	return withView(a, load, func(w http.ResponseWriter, r *http.Request, s *session, v T) {
		a.render(w, r, s, http.StatusOK, name, v)
	})
}

// withView is a form handler that starts from its page's view, which it
// fills in (the form's values, its errors) to render again when the input
// is refused; a failed load is shown by fail.
func withView[T any](a *Admin, load func(*http.Request, *session) (T, error), h func(http.ResponseWriter, *http.Request, *session, T)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		v, err := load(r, s)
		if err != nil {
			a.fail(w, r, s, err)
			return
		}
		h(w, r, s, v)
	}
}

func (a *Admin) page(platform bool, h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := a.session(r)
		if err != nil {
			a.cfg.Logger.Error("admin: reading a session failed", "path", r.URL.Path, "err", err.Error())
			a.render(w, r, nil, http.StatusServiceUnavailable, "error", errorView{Title: "Something went wrong",
				Message: "Keyhold could not read your session. Try again in a moment."})
			return
		}
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/status") {
				http.Redirect(w, r, "/admin/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			a.render(w, r, nil, http.StatusUnauthorized, "error", errorView{Title: "Signed out", Message: "Your session has ended. Sign in again."})
			return
		}
		if r.Method == http.MethodPost && !checkCSRF(r, s) {
			a.render(w, r, s, http.StatusForbidden, "error", errorView{Title: "Form expired", Message: "This form is no longer valid. Go back, reload the page and try again."})
			return
		}
		if platform && !s.PlatformAdmin() {
			a.render(w, r, s, http.StatusForbidden, "error", errorView{Title: "You don't have access",
				Message: "The admin center is for Power Platform and Dynamics 365 administrators. Ask a Global Administrator for one of these roles."})
			return
		}
		h(w, withPerson(r), s)
	}
}

// fail shows an API error as a page with the status it came with; the
// message is the API's own, which never holds a secret.
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ce *client.Error
	if errors.As(err, &ce) && ce.StatusCode < 500 {
		title := "The request was refused"
		switch ce.StatusCode {
		case http.StatusForbidden:
			title = "You don't have access"
		case http.StatusNotFound:
			title = "Not found"
		}
		a.render(w, r, s, ce.StatusCode, "error", errorView{Title: title, Message: ce.Message})
		return
	}
	a.cfg.Logger.Error("admin: an API call failed", "path", r.URL.Path, "err", err.Error())
	a.render(w, r, s, http.StatusBadGateway, "error", errorView{Title: "Something went wrong",
		Message: "Keyhold could not complete this request. Try again; if it keeps failing, give your administrator the time: " + a.cfg.Now().UTC().Format(time.RFC3339) + "."})
}

type signInView struct {
	Username string
	Next     string
	Error    string
}

func (a *Admin) signInPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, nil, http.StatusOK, "signin", signInView{Next: safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps redirects after sign-in on the pages.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/admin/") || strings.HasPrefix(n, "//") || strings.Contains(n, "\\") {
		return "/admin/"
	}
	return n
}

// signIn checks the password through the token endpoint (the same grant the
// CLI uses) and starts a session with the tokens it gets.
func (a *Admin) signIn(w http.ResponseWriter, r *http.Request) {
	r = withPerson(r) // the token endpoint's rate limit counts the person's address
	v := signInView{Username: strings.TrimSpace(r.PostFormValue("username")), Next: safeNext(r.PostFormValue("next"))}
	password := keyhold.NewSecret([]byte(r.PostFormValue("password")))
	switch {
	case v.Username == "" || !strings.Contains(v.Username, "@"):
		v.Error = "Enter your user name, such as admin@contoso.keyhold.internal."
	case password.IsZero():
		v.Error = "Enter your password."
	}
	if v.Error != "" {
		a.render(w, r, nil, http.StatusBadRequest, "signin", v)
		return
	}
	ctx := r.Context()
	c := a.client(nil)
	s := &session{upn: v.Username, tokens: map[string]client.Token{}}
	for _, aud := range audiences {
		tok, err := c.RequestToken(ctx, "organizations", client.Credential{Username: v.Username, Password: password}, aud)
		if err != nil {
			if client.StatusCode(err) >= 400 && client.StatusCode(err) < 500 {
				v.Error = "The user name or password is incorrect."
				a.render(w, r, nil, http.StatusUnauthorized, "signin", v)
				return
			}
			a.fail(w, r, nil, err)
			return
		}
		s.tokens[aud] = tok
		if s.expiresAt.IsZero() || tok.ExpiresOn.Before(s.expiresAt) {
			s.expiresAt = tok.ExpiresOn
		}
	}
	caller, err := a.cfg.Authenticate(ctx, s.tokens[client.AudienceARM].AccessToken, client.AudienceARM)
	if err != nil {
		a.fail(w, r, nil, err)
		return
	}
	s.objectID, s.tenantID, s.name = caller.Principal.ID, caller.TenantID, caller.Principal.DisplayName
	s.roles = append([]string(nil), caller.Principal.DirectoryRoles...)
	if limit := a.cfg.Now().Add(a.cfg.SessionLifetime); limit.Before(s.expiresAt) {
		s.expiresAt = limit
	}
	var err1, err2 error
	s.id, err1 = a.randomToken()
	s.csrf, err2 = a.randomToken()
	if err := errors.Join(err1, err2); err != nil {
		a.fail(w, r, nil, err)
		return
	}
	if err := a.createSession(ctx, s); err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.cfg.Logger.Info("admin: signed in", "principal", s.objectID)
	a.setCookie(w, s.id, int(time.Until(s.expiresAt).Seconds()))
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
}

// signOut ends the session in the store, so in every process at once. If
// that fails the cookie stays, so that signing out can be tried again.
func (a *Admin) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	if err := a.deleteSession(r.Context(), s); err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.setCookie(w, "", -1)
	http.Redirect(w, r, "/admin/signin", http.StatusSeeOther)
}

func (a *Admin) home(w http.ResponseWriter, r *http.Request, s *session) {
	if s.PlatformAdmin() {
		http.Redirect(w, r, "/admin/environments", http.StatusSeeOther)
		return
	}
	a.render(w, r, s, http.StatusOK, "home", nil)
}

// envRow is one environment in a list.
type envRow struct {
	client.Environment
	PolicyName string
}

func policyName(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

func (a *Admin) environments(w http.ResponseWriter, r *http.Request, s *session) {
	envs, err := a.client(s).ListEnvironments(r.Context())
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	rows := make([]envRow, 0, len(envs))
	for _, e := range envs {
		rows = append(rows, envRow{Environment: e, PolicyName: policyName(e.Policy())})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Properties.DisplayName < rows[j].Properties.DisplayName })
	a.render(w, r, s, http.StatusOK, "environments", rows)
}

type envView struct {
	Env        *client.Environment
	PolicyName string
	History    []client.EnvironmentOperation
	// Others are the policies in the environment's region it could change
	// its key to.
	Others []client.EnterprisePolicy
	// ChangeKeyError is why Change key was refused, shown next to its field.
	ChangeKeyError string
}

// loadEnvironment reads the environment of the request's path, its history
// and the policies it could change its key to.
func (a *Admin) loadEnvironment(r *http.Request, s *session) (envView, error) {
	c := a.client(s)
	e, err := c.GetEnvironment(r.Context(), r.PathValue("id"))
	if err != nil {
		return envView{}, err
	}
	hist, err := c.EnvironmentHistory(r.Context(), e.Name)
	if err != nil {
		return envView{}, err
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].CreatedDateTime.After(hist[j].CreatedDateTime) })
	v := envView{Env: e, PolicyName: policyName(e.Policy()), History: hist}
	if e.Policy() != "" {
		ps, err := a.listPolicies(r.Context(), c)
		if err != nil {
			return envView{}, err
		}
		for _, p := range ps {
			if !strings.EqualFold(p.ID, e.Policy()) && strings.EqualFold(p.Location, e.Location) {
				v.Others = append(v.Others, p)
			}
		}
	}
	return v, nil
}

// statusView is what the environment page polls for live progress.
type statusView struct {
	State        string `json:"state"`
	Encryption   string `json:"encryption"`
	Progress     int    `json:"progress"`
	KeyManagedBy string `json:"keyManagedBy"`
	Operation    string `json:"operation,omitempty"`
	Running      bool   `json:"running"`
}

func (a *Admin) environmentStatus(w http.ResponseWriter, r *http.Request, s *session) {
	c := a.client(s)
	e, err := c.GetEnvironment(r.Context(), r.PathValue("id"))
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"not found"}`))
		return
	}
	v := statusView{State: e.Properties.States.Runtime.ID, Encryption: e.Properties.Encryption.Status,
		Progress: e.Properties.Encryption.Progress, KeyManagedBy: e.Properties.ProtectionStatus.KeyManagedBy}
	if hist, err := c.EnvironmentHistory(r.Context(), e.Name); err == nil {
		for _, op := range hist {
			if !op.Ended() {
				v.Running, v.Operation = true, op.TypeDisplayName
			}
		}
	}
	writeJSON(w, v)
}

func (a *Admin) reenable(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Re-enable environment",
			Message: "Re-enabling unlocks the environment with its customer-managed key. It works only when the enterprise policy can use the key again.",
			Action:  "/admin/environments/" + url.PathEscape(id) + "/reenable", Button: "Re-enable environment", Back: "/admin/environments/" + url.PathEscape(id)})
		return
	}
	if _, err := a.client(s).ReenableEnvironment(r.Context(), id); err != nil {
		a.flashErr(w, r, s, err, "/admin/environments/"+url.PathEscape(id))
		return
	}
	a.flash(s, "The environment is being re-enabled.")
	http.Redirect(w, r, "/admin/environments/"+url.PathEscape(id), http.StatusSeeOther)
}

// flashErr shows a refused request on the page it came from.
func (a *Admin) flashErr(w http.ResponseWriter, r *http.Request, s *session, err error, back string) {
	var ce *client.Error
	if errors.As(err, &ce) && ce.StatusCode < 500 {
		a.flash(s, "Refused: "+ce.Message)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	a.fail(w, r, s, err)
}

type confirmView struct {
	Title, Message, Action, Button, Back string
	Fields                               map[string][]string
	Items                                []string
}

// policyInfo is a policy with the environments linked to it.
type policyInfo struct {
	client.EnterprisePolicy
	Environments []client.Environment
}

// listPolicies lists the Encryption policies the user can read in every
// subscription they can see.
func (a *Admin) listPolicies(ctx context.Context, c *client.Client) ([]client.EnterprisePolicy, error) {
	subs, err := c.ListSubscriptions(ctx)
	if err != nil {
		return nil, err
	}
	var out []client.EnterprisePolicy
	for _, sub := range subs {
		ps, err := c.ListPolicies(ctx, sub.SubscriptionID, "")
		if err != nil {
			if st := client.StatusCode(err); st == http.StatusForbidden || st == http.StatusNotFound {
				continue
			}
			return nil, err
		}
		for _, p := range ps {
			if strings.EqualFold(p.Kind, "Encryption") {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type policiesView struct {
	Tab      string
	Policies []policyInfo
	Linked   []envRow
}

func (a *Admin) policies(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	ps, err := a.listPolicies(ctx, c)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	envs, err := c.ListEnvironments(ctx)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	v := policiesView{Tab: "all"}
	if r.URL.Query().Get("tab") == "environments" {
		v.Tab = "environments"
	}
	for _, p := range ps {
		pi := policyInfo{EnterprisePolicy: p}
		for _, e := range envs {
			if strings.EqualFold(e.Policy(), p.ID) {
				pi.Environments = append(pi.Environments, e)
			}
		}
		v.Policies = append(v.Policies, pi)
	}
	for _, e := range envs {
		if e.Policy() != "" {
			v.Linked = append(v.Linked, envRow{Environment: e, PolicyName: policyName(e.Policy())})
		}
	}
	a.render(w, r, s, http.StatusOK, "policies", v)
}

// candidate is an environment offered on Add environments.
type candidate struct {
	client.Environment
	Reason  string // why it cannot be added, or what adding it changes
	Blocked bool   // it cannot be added
}

type policyView struct {
	Policy     policyInfo
	VaultName  string
	Candidates []candidate
	Step       string // "", "add"
	Selected   []candidate
	Error      string
}

func (a *Admin) loadPolicy(ctx context.Context, c *client.Client, id string) (policyView, []client.Environment, error) {
	p, err := c.GetPolicy(ctx, id)
	if err != nil {
		return policyView{}, nil, err
	}
	envs, err := c.ListEnvironments(ctx)
	if err != nil {
		return policyView{}, nil, err
	}
	v := policyView{Policy: policyInfo{EnterprisePolicy: *p}}
	if enc := p.Properties.Encryption; enc != nil && enc.KeyVault != nil {
		v.VaultName = policyName(enc.KeyVault.ID)
	}
	for _, e := range envs {
		switch {
		case strings.EqualFold(e.Policy(), p.ID):
			v.Policy.Environments = append(v.Policy.Environments, e)
		case !strings.EqualFold(e.Location, p.Location):
			v.Candidates = append(v.Candidates, candidate{e, "In region " + e.Location + "; this policy is in " + p.Location + ".", true})
		case e.Locked():
			v.Candidates = append(v.Candidates, candidate{e, "The environment is disabled.", true})
		case e.Policy() != "":
			v.Candidates = append(v.Candidates, candidate{e, "Uses policy " + policyName(e.Policy()) + "; adding it here changes its key.", false})
		default:
			v.Candidates = append(v.Candidates, candidate{e, "", false})
		}
	}
	return v, envs, nil
}

func (a *Admin) policyPage(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.URL.Query().Get("id")
	if !client.IsPolicyID(id) {
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Not a policy", Message: "The link does not name an enterprise policy."})
		return
	}
	v, _, err := a.loadPolicy(r.Context(), a.client(s), id)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	v.Step = r.URL.Query().Get("step")
	a.render(w, r, s, http.StatusOK, "policy", v)
}

// lifecycle posts link or unlink for an environment; the operation runs in
// the background and the environment page shows its progress.
func (a *Admin) lifecycle(ctx context.Context, c *client.Client, envID, verb, systemID string) error {
	path := "providers/Microsoft.BusinessAppPlatform/environments/" + url.PathEscape(envID) + "/enterprisePolicies/Encryption/" + verb + "?api-version=2019-10-01"
	_, err := c.Do(ctx, http.MethodPost, client.AudienceBAP, path, map[string]string{"SystemId": systemID}, nil)
	return err
}

// addEnvironments is Add environments > Continue (step=confirm shows what
// will change) > Confirm (step=save links them).
func (a *Admin) addEnvironments(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	id := r.PostFormValue("id")
	if !client.IsPolicyID(id) {
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Not a policy", Message: "The form does not name an enterprise policy."})
		return
	}
	v, _, err := a.loadPolicy(ctx, c, id)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	chosen := map[string]bool{}
	for _, e := range r.PostForm["env"] {
		chosen[e] = true
	}
	for _, cand := range v.Candidates {
		if chosen[cand.Name] {
			if cand.Blocked {
				v.Step, v.Error = "add", cand.Properties.DisplayName+" cannot be added: "+cand.Reason
				a.render(w, r, s, http.StatusBadRequest, "policy", v)
				return
			}
			v.Selected = append(v.Selected, cand)
		}
	}
	if len(v.Selected) == 0 {
		v.Step, v.Error = "add", "Select at least one environment."
		a.render(w, r, s, http.StatusBadRequest, "policy", v)
		return
	}
	if r.PostFormValue("step") != "save" {
		v.Step = "confirm"
		a.render(w, r, s, http.StatusOK, "policy", v)
		return
	}
	for _, e := range v.Selected {
		if err := a.lifecycle(ctx, c, e.Name, "link", v.Policy.Properties.SystemID); err != nil {
			a.flashErr(w, r, s, err, "/admin/policy?id="+url.QueryEscape(id))
			return
		}
	}
	if len(v.Selected) == 1 {
		a.flash(s, "Encryption with this policy's key has started for "+v.Selected[0].Properties.DisplayName+".")
		http.Redirect(w, r, "/admin/environments/"+url.PathEscape(v.Selected[0].Name), http.StatusSeeOther)
		return
	}
	a.flash(s, "Encryption with this policy's key has started.")
	http.Redirect(w, r, "/admin/policy?id="+url.QueryEscape(id), http.StatusSeeOther)
}

func (a *Admin) removeEnvironment(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	id, envID := r.PostFormValue("id"), r.PostFormValue("env")
	if !client.IsPolicyID(id) || envID == "" {
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Nothing to remove", Message: "The form does not name a policy and an environment."})
		return
	}
	back := "/admin/policy?id=" + url.QueryEscape(id)
	if r.PostFormValue("confirm") != "yes" {
		a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Remove environment",
			Message: "The environment goes back to the Microsoft-managed key. Its data stays available while the key changes.",
			Action:  "/admin/policy/remove", Button: "Remove environment", Back: back,
			Fields: map[string][]string{"id": {id}, "env": {envID}}})
		return
	}
	p, err := c.GetPolicy(ctx, id)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	if err := a.lifecycle(ctx, c, envID, "unlink", p.Properties.SystemID); err != nil {
		a.flashErr(w, r, s, err, back)
		return
	}
	a.flash(s, "The environment is being moved back to the Microsoft-managed key.")
	http.Redirect(w, r, "/admin/environments/"+url.PathEscape(envID), http.StatusSeeOther)
}
