package keyvault

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Rotation policy actions, as Key Vault spells them on output.
const (
	actionRotate = "Rotate"
	actionNotify = "Notify"
)

// minExpiryTime is the shortest expiryTime Key Vault accepts.
const minExpiryTime = 28 * 24 * time.Hour

// KeyRotationPolicy is a key's rotation policy on the wire.
type KeyRotationPolicy struct {
	ID              string                       `json:"id,omitempty"`
	LifetimeActions []LifetimeAction             `json:"lifetimeActions"`
	Attributes      *KeyRotationPolicyAttributes `json:"attributes,omitempty"`
}

// LifetimeAction is one action of a rotation policy and when it happens.
type LifetimeAction struct {
	Trigger *LifetimeActionTrigger `json:"trigger,omitempty"`
	Action  *LifetimeActionType    `json:"action,omitempty"`
}

// LifetimeActionTrigger says when: a duration after the newest version was
// created, or before it expires (ISO 8601 durations).
type LifetimeActionTrigger struct {
	TimeAfterCreate  *string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry *string `json:"timeBeforeExpiry,omitempty"`
}

// LifetimeActionType names the action: Rotate or Notify.
type LifetimeActionType struct {
	Type string `json:"type"`
}

// KeyRotationPolicyAttributes holds the expiry given to new versions.
type KeyRotationPolicyAttributes struct {
	ExpiryTime *string `json:"expiryTime,omitempty"`
	Created    *int64  `json:"created,omitempty"`
	Updated    *int64  `json:"updated,omitempty"`
}

// duration is an ISO 8601 duration (PnYnMnWnDTnHnMnS), applied with
// calendar arithmetic as Key Vault applies P1Y or P3M.
type duration struct {
	years, months, days int
	clock               time.Duration
	text                string
}

var durationRE = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

// parseDuration parses an ISO 8601 duration; what names the field for the
// error, an EInvalid BadParameter.
func parseDuration(what, s string) (*duration, error) {
	m := durationRE.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return nil, badParam("%s %q is not an ISO 8601 duration such as P90D or P1Y", what, s)
	}
	n := make([]int, 8)
	for i := 1; i < len(m); i++ {
		if m[i] == "" {
			continue
		}
		v, err := strconv.Atoi(m[i])
		if err != nil || v > 100000 {
			return nil, badParam("%s %q is too long", what, s)
		}
		n[i] = v
	}
	d := &duration{years: n[1], months: n[2], days: 7*n[3] + n[4],
		clock: time.Duration(n[5])*time.Hour + time.Duration(n[6])*time.Minute + time.Duration(n[7])*time.Second,
		text:  strings.ToUpper(s)}
	if d.approx() <= 0 {
		return nil, badParam("%s %q must be longer than zero", what, s)
	}
	return d, nil
}

func (d *duration) addTo(t time.Time) time.Time {
	return t.AddDate(d.years, d.months, d.days).Add(d.clock)
}

func (d *duration) subFrom(t time.Time) time.Time {
	return t.AddDate(-d.years, -d.months, -d.days).Add(-d.clock)
}

// approx is the duration's length from a fixed day, for comparisons.
func (d *duration) approx() time.Duration {
	ref := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	return d.addTo(ref).Sub(ref)
}

// rotationPolicy is a validated policy: what the rotator needs.
type rotationPolicy struct {
	rotateAfterCreate  *duration
	rotateBeforeExpiry *duration
	notifyBeforeExpiry *duration
	expiry             *duration
}

// validatePolicy checks a policy by Key Vault's rules and returns it parsed
// and normalized for storage: at most one Rotate and one Notify action,
// each with exactly one trigger; timeAfterCreate only for Rotate; durations
// ISO 8601; expiryTime at least 28 days and longer than the triggers.
func validatePolicy(in *KeyRotationPolicy) (*rotationPolicy, *KeyRotationPolicy, error) {
	out := &KeyRotationPolicy{LifetimeActions: []LifetimeAction{}}
	pol := &rotationPolicy{}
	if in.Attributes != nil && in.Attributes.ExpiryTime != nil {
		d, err := parseDuration("expiryTime", *in.Attributes.ExpiryTime)
		if err != nil {
			return nil, nil, err
		}
		if d.approx() < minExpiryTime {
			return nil, nil, badParam("expiryTime %q must be at least 28 days (P28D)", *in.Attributes.ExpiryTime)
		}
		pol.expiry = d
		out.Attributes = &KeyRotationPolicyAttributes{ExpiryTime: &d.text}
	}
	if len(in.LifetimeActions) > 2 {
		return nil, nil, badParam("a rotation policy has at most two lifetime actions (one Rotate and one Notify), not %d", len(in.LifetimeActions))
	}
	seen := map[string]bool{}
	for i, la := range in.LifetimeActions {
		if la.Action == nil || la.Trigger == nil {
			return nil, nil, badParam("lifetimeActions[%d] needs both an action and a trigger", i)
		}
		var typ string
		switch {
		case strings.EqualFold(la.Action.Type, actionRotate):
			typ = actionRotate
		case strings.EqualFold(la.Action.Type, actionNotify):
			typ = actionNotify
		default:
			return nil, nil, badParam("lifetimeActions[%d].action.type %q must be Rotate or Notify", i, la.Action.Type)
		}
		if seen[typ] {
			return nil, nil, badParam("a rotation policy may have only one %s action", typ)
		}
		seen[typ] = true
		t := la.Trigger
		if (t.TimeAfterCreate == nil) == (t.TimeBeforeExpiry == nil) {
			return nil, nil, badParam("lifetimeActions[%d].trigger needs exactly one of timeAfterCreate and timeBeforeExpiry", i)
		}
		var d *duration
		var err error
		trig := &LifetimeActionTrigger{}
		if t.TimeAfterCreate != nil {
			if typ != actionRotate {
				return nil, nil, badParam("timeAfterCreate is allowed only for the Rotate action")
			}
			if d, err = parseDuration("timeAfterCreate", *t.TimeAfterCreate); err != nil {
				return nil, nil, err
			}
			pol.rotateAfterCreate, trig.TimeAfterCreate = d, &d.text
		} else {
			if d, err = parseDuration("timeBeforeExpiry", *t.TimeBeforeExpiry); err != nil {
				return nil, nil, err
			}
			trig.TimeBeforeExpiry = &d.text
			if typ == actionRotate {
				pol.rotateBeforeExpiry = d
			} else {
				pol.notifyBeforeExpiry = d
			}
		}
		if pol.expiry != nil && d.approx() >= pol.expiry.approx() {
			return nil, nil, badParam("the trigger %s must be shorter than expiryTime %s", d.text, pol.expiry.text)
		}
		out.LifetimeActions = append(out.LifetimeActions, LifetimeAction{Trigger: trig, Action: &LifetimeActionType{Type: typ}})
	}
	return pol, out, nil
}

// defaultPolicy is what a key without a policy shows: notify 30 days before
// expiry, as Key Vault's portal proposes.
func defaultPolicy() *KeyRotationPolicy {
	d := "P30D"
	return &KeyRotationPolicy{LifetimeActions: []LifetimeAction{{
		Trigger: &LifetimeActionTrigger{TimeBeforeExpiry: &d}, Action: &LifetimeActionType{Type: actionNotify},
	}}}
}

// rotationPolicy returns the parsed stored policy of a key, nil if it has
// none.
func (s *Service) rotationPolicy(ctx context.Context, vault, name string) (*rotationPolicy, error) {
	ks, err := s.keyStore()
	if err != nil {
		return nil, err
	}
	stored, err := ks.GetKeyRotationPolicy(ctx, vault, name)
	if keyhold.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pol, _, err := parseStoredPolicy(stored)
	return pol, err
}

func parseStoredPolicy(stored *keyhold.KeyRotationPolicy) (*rotationPolicy, *KeyRotationPolicy, error) {
	var wire KeyRotationPolicy
	if err := json.Unmarshal(stored.Policy, &wire); err != nil {
		return nil, nil, keyhold.Internal("keyvault: stored rotation policy", err)
	}
	pol, out, err := validatePolicy(&wire)
	if err != nil {
		return nil, nil, keyhold.Internal("keyvault: stored rotation policy", err)
	}
	return pol, out, nil
}

func serveGetRotationPolicy(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		v, err := s.getVersion(rq.ctx(), rq.vaultName(), name, "")
		if err != nil {
			return err
		}
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		out := defaultPolicy()
		stored, err := ks.GetKeyRotationPolicy(rq.ctx(), rq.vaultName(), name)
		switch {
		case err == nil:
			if _, out, err = parseStoredPolicy(stored); err != nil {
				return err
			}
			if out.Attributes == nil {
				out.Attributes = &KeyRotationPolicyAttributes{}
			}
			out.Attributes.Created, out.Attributes.Updated = unix(stored.CreatedAt), unix(stored.UpdatedAt)
		case !keyhold.IsNotFound(err):
			return err
		}
		out.ID = rq.keyID(v.Name) + "/rotationpolicy"
		return writeJSON(rq, out)
	}
}

func servePutRotationPolicy(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		var in KeyRotationPolicy
		if err := decode(rq, &in); err != nil {
			return err
		}
		_, out, err := validatePolicy(&in)
		if err != nil {
			return err
		}
		v, err := s.getVersion(rq.ctx(), rq.vaultName(), name, "")
		if err != nil {
			return err
		}
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		raw, err := json.Marshal(out)
		if err != nil {
			return keyhold.Internal("keyvault: encode rotation policy", err)
		}
		now := s.now().UTC().Truncate(time.Second)
		stored := &keyhold.KeyRotationPolicy{VaultName: rq.vaultName(), Name: v.Name, Policy: raw, CreatedAt: now, UpdatedAt: now}
		if old, err := ks.GetKeyRotationPolicy(rq.ctx(), rq.vaultName(), v.Name); err == nil {
			stored.CreatedAt = old.CreatedAt
		}
		if err := ks.PutKeyRotationPolicy(rq.ctx(), stored); err != nil {
			return err
		}
		if out.Attributes == nil {
			out.Attributes = &KeyRotationPolicyAttributes{}
		}
		out.Attributes.Created, out.Attributes.Updated = unix(stored.CreatedAt), unix(stored.UpdatedAt)
		out.ID = rq.keyID(v.Name) + "/rotationpolicy"
		return writeJSON(rq, out)
	}
}
