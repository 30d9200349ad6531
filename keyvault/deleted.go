package keyvault

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/events"
)

// deletedProperties are the properties of a soft-deleted vault record. Vault
// is the original, kept so that recovery can restore it; it is never
// rendered.
type deletedProperties struct {
	VaultID                string            `json:"vaultId"`
	Location               string            `json:"location"`
	DeletionDate           time.Time         `json:"deletionDate"`
	ScheduledPurgeDate     time.Time         `json:"scheduledPurgeDate"`
	Tags                   map[string]string `json:"tags"`
	PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
	Vault                  *vaultSnapshot    `json:"vault,omitempty"`
}

// vaultSnapshot is a vault resource as it was when it was deleted.
type vaultSnapshot struct {
	ID         string             `json:"id"`
	Location   string             `json:"location"`
	Tags       map[string]string  `json:"tags,omitempty"`
	Properties json.RawMessage    `json:"properties"`
	SystemData keyhold.SystemData `json:"systemData"`
}

// DeletedVaultID returns the id of the soft-deleted vault name in a
// subscription and location.
func DeletedVaultID(subscriptionID, location, name string) string {
	return "/subscriptions/" + subscriptionID + "/providers/Microsoft.KeyVault/locations/" + arm.NormalizeLocation(location) + "/deletedVaults/" + name
}

// parseDeleted decodes the properties of a deleted-vault record.
func parseDeleted(r *keyhold.Resource) (*deletedProperties, error) {
	var d deletedProperties
	if err := json.Unmarshal(r.Properties, &d); err != nil {
		return nil, keyhold.Internal("keyvault: stored deleted vault", err)
	}
	return &d, nil
}

// findDeletedVault returns the soft-deleted vault called name in any
// subscription, or nil.
func findDeletedVault(ctx context.Context, st keyhold.Store, name string) (*keyhold.Resource, error) {
	list, err := st.ListResources(ctx, keyhold.ResourceFilter{Type: DeletedVaultType, Name: name})
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		if strings.EqualFold(r.Name, name) && strings.EqualFold(r.Type, DeletedVaultType) {
			return r, nil
		}
	}
	return nil, nil
}

// Delete soft-deletes vault r: in the transaction that removes it, it stores
// a deleted-vault record that keeps the vault for recovery until its
// scheduled purge date. The vault's keys stay in the store, unreachable
// until the vault is recovered. It returns the store's error.
func (t vaultType) Delete(ctx context.Context, r *keyhold.Resource) error {
	tx := arm.TxFrom(ctx)
	if tx == nil {
		tx = t.s.cfg.Store
	}
	p, err := ParseProperties(r)
	if err != nil {
		return err
	}
	id, err := armid.Parse(r.ID)
	if err != nil {
		return keyhold.Internal("keyvault: stored vault id", err)
	}
	now := t.s.now().UTC()
	d := deletedProperties{
		VaultID: r.ID, Location: r.Location, DeletionDate: now,
		ScheduledPurgeDate: now.Add(time.Duration(p.RetentionDays()) * 24 * time.Hour),
		Tags:               r.Tags, PurgeProtectionEnabled: p.PurgeProtected(),
		Vault: &vaultSnapshot{ID: r.ID, Location: r.Location, Tags: r.Tags, Properties: r.Properties, SystemData: r.SystemData},
	}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	rec := &keyhold.Resource{
		ID: DeletedVaultID(id.SubscriptionID(), r.Location, r.Name), SubscriptionID: id.SubscriptionID(),
		Type: DeletedVaultType, Name: r.Name, Location: r.Location, Tags: r.Tags, SystemData: r.SystemData,
	}
	rec.SystemData.LastModifiedAt = now
	if rec.Properties, err = json.Marshal(d); err != nil {
		return keyhold.Internal("keyvault: encoding deleted vault", err)
	}
	rec.ETag = etag(rec)
	if err := tx.PutResource(ctx, rec); err != nil {
		return err
	}
	t.s.publishOnCommit(ctx, events.Event{Kind: events.VaultDeleted, TenantID: p.TenantID, Scope: r.ID, Detail: "keyvault: vault soft-deleted"})
	return nil
}

// recoverVault restores the soft-deleted vault deleted in answer to a PUT
// with createMode recover: the original properties, tags and location come
// back (the body's properties other than tenantId are not applied) and the
// deleted record goes. The vault must be recovered where it was: same
// subscription and resource group.
func (t vaultType) recoverVault(ctx context.Context, req *arm.PutRequest, p *Properties, deleted *keyhold.Resource) (*keyhold.Resource, int, error) {
	d, err := parseDeleted(deleted)
	if err != nil {
		return nil, 0, err
	}
	if d.Vault == nil || !strings.EqualFold(d.VaultID, req.ID.String()) {
		if !strings.EqualFold(deleted.SubscriptionID, req.Subscription.ID) {
			return nil, 0, deletedNamesake()
		}
		return nil, 0, keyhold.Errorc(keyhold.EConflict, "ConflictError",
			"The deleted vault '%s' can only be recovered where it was: %s.", req.ID.Name(), d.VaultID)
	}
	if !strings.EqualFold(p.TenantID, req.Caller.TenantID) {
		return nil, 0, badRequest("The property \"tenantId\" must be the caller's own tenant '%s'.", req.Caller.TenantID)
	}
	orig := &keyhold.Resource{Properties: d.Vault.Properties}
	props, err := ParseProperties(orig)
	if err != nil {
		return nil, 0, err
	}
	props.VaultURI = t.s.VaultURI(req.ID.Name())
	props.ProvisioningState = "Succeeded"
	out := *req.Resource
	out.Location, out.Tags, out.SKU = d.Vault.Location, d.Vault.Tags, nil
	if out.Properties, err = json.Marshal(props); err != nil {
		return nil, 0, keyhold.Internal("keyvault: encoding vault properties", err)
	}
	if err := req.Store.DeleteResource(ctx, deleted.ID); err != nil {
		return nil, 0, err
	}
	t.s.publishOnCommit(ctx, events.Event{Kind: events.VaultRecovered, TenantID: props.TenantID, Scope: req.ID.String(), Detail: "keyvault: vault recovered"})
	return &out, 0, nil
}

// renderDeleted returns a deleted vault as armkeyvault reads it.
func renderDeleted(r *keyhold.Resource) (map[string]any, error) {
	d, err := parseDeleted(r)
	if err != nil {
		return nil, err
	}
	tags := d.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]any{
		"id":   r.ID,
		"name": r.Name,
		"type": DeletedVaultType,
		"properties": map[string]any{
			"vaultId":                d.VaultID,
			"location":               d.Location,
			"deletionDate":           d.DeletionDate.UTC().Format(time.RFC3339),
			"scheduledPurgeDate":     d.ScheduledPurgeDate.UTC().Format(time.RFC3339),
			"tags":                   tags,
			"purgeProtectionEnabled": d.PurgeProtectionEnabled,
		},
	}, nil
}

// listDeleted serves GET /subscriptions/{s}/providers/Microsoft.KeyVault/deletedVaults.
func (t vaultType) listDeleted(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	list, err := rr.Store.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: rr.Subscription.ID, Type: DeletedVaultType})
	if err != nil {
		return nil, 0, err
	}
	items := []any{}
	for _, r := range list {
		if !strings.EqualFold(r.Type, DeletedVaultType) {
			continue
		}
		item, err := renderDeleted(r)
		if err != nil {
			return nil, 0, err
		}
		items = append(items, item)
	}
	return map[string]any{"value": items}, http.StatusOK, nil
}

// deletedInSubscription returns the deleted vault name in the route's
// subscription and location, or a 404 in Azure's words.
func deletedInSubscription(ctx context.Context, st keyhold.Store, rr *arm.RouteRequest) (*keyhold.Resource, error) {
	name, loc := rr.Params["vaultName"], rr.Params["location"]
	r, err := findDeletedVault(ctx, st, name)
	if err != nil {
		return nil, err
	}
	if r == nil || !strings.EqualFold(r.SubscriptionID, rr.Subscription.ID) || arm.NormalizeLocation(r.Location) != arm.NormalizeLocation(loc) {
		return nil, keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound",
			"The Resource 'Microsoft.KeyVault/locations/deletedVaults/%s' in location '%s' was not found.", name, loc)
	}
	return r, nil
}

// getDeleted serves GET .../locations/{loc}/deletedVaults/{name}.
func (t vaultType) getDeleted(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	r, err := deletedInSubscription(ctx, rr.Store, rr)
	if err != nil {
		return nil, 0, err
	}
	out, err := renderDeleted(r)
	if err != nil {
		return nil, 0, err
	}
	return out, http.StatusOK, nil
}

// errPurgeProtected refuses to purge a vault under purge protection.
func errPurgeProtected() error {
	return keyhold.Errorc(keyhold.EConflict, "InvalidOperation", "Operation 'DeletedVaultPurge' is not allowed.")
}

// purgeDeleted serves POST .../locations/{loc}/deletedVaults/{name}/purge:
// the deleted vault and all its keys go for good, unless purge protection
// is on (409: the vault then waits for its scheduled purge date).
func (t vaultType) purgeDeleted(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	var purged *keyhold.Resource
	err := rr.Store.InTx(ctx, func(tx keyhold.Store) error {
		r, err := deletedInSubscription(ctx, tx, rr)
		if err != nil {
			return err
		}
		d, err := parseDeleted(r)
		if err != nil {
			return err
		}
		if d.PurgeProtectionEnabled {
			return errPurgeProtected()
		}
		purged = r
		return purgeRecord(ctx, tx, r)
	})
	if err != nil {
		return nil, 0, err
	}
	t.s.publishPurged(ctx, purged, "keyvault: vault purged on request")
	return nil, http.StatusOK, nil
}

// purgeRecord removes a deleted-vault record and every key of the vault.
func purgeRecord(ctx context.Context, tx keyhold.Store, r *keyhold.Resource) error {
	if err := tx.DeleteResource(ctx, r.ID); err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	return tx.PurgeVaultKeys(ctx, r.Name)
}

func (s *Service) publishPurged(ctx context.Context, r *keyhold.Resource, detail string) {
	if s.cfg.Events == nil || r == nil {
		return
	}
	tenant := ""
	if d, err := parseDeleted(r); err == nil && d.Vault != nil {
		if p, err := ParseProperties(&keyhold.Resource{Properties: d.Vault.Properties}); err == nil {
			tenant = p.TenantID
		}
	}
	scope := r.ID
	if d, err := parseDeleted(r); err == nil && d.VaultID != "" {
		scope = d.VaultID
	}
	s.cfg.Events.Publish(ctx, events.Event{Kind: events.VaultPurged, TenantID: tenant, Scope: scope, Detail: detail})
}

// purgeDueVaults purges the soft-deleted vaults whose scheduled purge date
// has passed, purge protection or not, with their keys. Each vault goes in
// its own transaction; it returns the first error after trying them all.
func (s *Service) purgeDueVaults(ctx context.Context) error {
	list, err := s.cfg.Store.ListResources(ctx, keyhold.ResourceFilter{Type: DeletedVaultType})
	if err != nil {
		return err
	}
	now := s.now()
	var first error
	for _, r := range list {
		d, err := parseDeleted(r)
		if err != nil || d.ScheduledPurgeDate.After(now) {
			continue
		}
		var purged *keyhold.Resource
		err = s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
			cur, err := tx.GetResource(ctx, r.ID)
			if keyhold.IsNotFound(err) {
				return nil // another server purged it first
			}
			if err != nil {
				return err
			}
			if d, err := parseDeleted(cur); err != nil || d.ScheduledPurgeDate.After(now) {
				return err
			}
			purged = cur
			return purgeRecord(ctx, tx, cur)
		})
		if err != nil {
			s.log.Error("keyvault: purging a deleted vault", "vault", r.Name, "err", err)
			if first == nil {
				first = err
			}
			continue
		}
		if purged != nil {
			s.log.Info("keyvault: purged a deleted vault after its retention period", "vault", r.Name)
			s.publishPurged(ctx, purged, "keyvault: vault purged after its retention period")
		}
	}
	return first
}
