package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/keyhold/keyhold"
)

// CreateSubscription stores sub. Subscription ids compare
// case-insensitively, as they do inside ARM resource ids. It returns EInvalid
// without an id and EConflict if the id is taken.
func (s *Store) CreateSubscription(ctx context.Context, sub *keyhold.Subscription) error {
	if sub.ID == "" {
		return invalid("subscription id is required")
	}
	created, err := encTime(sub.CreatedAt)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `INSERT INTO subscriptions (id_key, id, tenant_id, display_name, state, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(sub.ID), sub.ID, sub.TenantID, sub.DisplayName, sub.State, created)
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("subscription %q", sub.ID)
	}
	return nil
}

const subscriptionCols = `id, tenant_id, display_name, state, created_at`

func scanSubscription(r interface{ Scan(...any) error }) (*keyhold.Subscription, error) {
	sub := &keyhold.Subscription{}
	err := r.Scan(&sub.ID, &sub.TenantID, &sub.DisplayName, &sub.State, dbTime{&sub.CreatedAt})
	return sub, err
}

// GetSubscription returns the subscription with id (case-insensitive), or
// ENotFound.
func (s *Store) GetSubscription(ctx context.Context, id string) (*keyhold.Subscription, error) {
	sub, err := scanSubscription(s.queryRow(ctx, `SELECT `+subscriptionCols+` FROM subscriptions WHERE id_key = ?`, key(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("subscription %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return sub, nil
}

// ListSubscriptions returns a tenant's subscriptions ordered by id; tenantID
// "" lists every tenant's.
func (s *Store) ListSubscriptions(ctx context.Context, tenantID string) ([]*keyhold.Subscription, error) {
	var w where
	if tenantID != "" {
		w.add("tenant_id = ?", tenantID)
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Subscription, error) { return scanSubscription(r) },
		`SELECT `+subscriptionCols+` FROM subscriptions`+w.String()+` ORDER BY id_key`, w.args...)
}

// PutResourceGroup creates g or replaces its location, tags, managedBy,
// provisioning state and the last-modified half of its SystemData. The
// stored name and the created half of SystemData keep the values of the first
// PUT, as ARM keeps them. It returns EInvalid without a subscription or name.
func (s *Store) PutResourceGroup(ctx context.Context, g *keyhold.ResourceGroup) error {
	switch {
	case g.SubscriptionID == "":
		return invalid("resource group %q has no subscription", g.Name)
	case g.Name == "":
		return invalid("resource group name is required")
	}
	tags, err := encJSON(g.Tags)
	if err != nil {
		return err
	}
	ts, err := encTimes(g.SystemData.CreatedAt, g.SystemData.LastModifiedAt)
	if err != nil {
		return err
	}
	sd := g.SystemData
	_, err = s.exec(ctx, `INSERT INTO resource_groups (subscription_key, name_key, subscription_id, name, location, tags,
		managed_by, provisioning_state, created_by, created_by_type, created_at,
		last_modified_by, last_modified_by_type, last_modified_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription_key, name_key) DO UPDATE SET location = excluded.location, tags = excluded.tags,
		managed_by = excluded.managed_by, provisioning_state = excluded.provisioning_state,
		last_modified_by = excluded.last_modified_by, last_modified_by_type = excluded.last_modified_by_type,
		last_modified_at = excluded.last_modified_at`,
		key(g.SubscriptionID), key(g.Name), g.SubscriptionID, g.Name, g.Location, tags,
		g.ManagedBy, g.ProvisioningState, sd.CreatedBy, sd.CreatedByType, ts[0],
		sd.LastModifiedBy, sd.LastModifiedByType, ts[1])
	return err
}

const resourceGroupCols = `subscription_id, name, location, tags, managed_by, provisioning_state,
	created_by, created_by_type, created_at, last_modified_by, last_modified_by_type, last_modified_at`

func scanResourceGroup(r interface{ Scan(...any) error }) (*keyhold.ResourceGroup, error) {
	g := &keyhold.ResourceGroup{}
	sd := &g.SystemData
	err := r.Scan(&g.SubscriptionID, &g.Name, &g.Location, dbJSON{&g.Tags}, &g.ManagedBy, &g.ProvisioningState,
		&sd.CreatedBy, &sd.CreatedByType, dbTime{&sd.CreatedAt},
		&sd.LastModifiedBy, &sd.LastModifiedByType, dbTime{&sd.LastModifiedAt})
	return g, err
}

// GetResourceGroup returns the named group (case-insensitive), or ENotFound.
func (s *Store) GetResourceGroup(ctx context.Context, subscriptionID, name string) (*keyhold.ResourceGroup, error) {
	g, err := scanResourceGroup(s.queryRow(ctx, `SELECT `+resourceGroupCols+` FROM resource_groups
		WHERE subscription_key = ? AND name_key = ?`, key(subscriptionID), key(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("resource group %q", name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return g, nil
}

// ListResourceGroups returns a subscription's groups ordered by name,
// case-insensitively.
func (s *Store) ListResourceGroups(ctx context.Context, subscriptionID string) ([]*keyhold.ResourceGroup, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.ResourceGroup, error) { return scanResourceGroup(r) },
		`SELECT `+resourceGroupCols+` FROM resource_groups WHERE subscription_key = ? ORDER BY name_key`,
		key(subscriptionID))
}

// DeleteResourceGroup deletes the named group's record; the resources in it
// are the caller's to delete. It returns ENotFound if there is no such group.
func (s *Store) DeleteResourceGroup(ctx context.Context, subscriptionID, name string) error {
	n, err := s.execN(ctx, `DELETE FROM resource_groups WHERE subscription_key = ? AND name_key = ?`,
		key(subscriptionID), key(name))
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("resource group %q", name)
	}
	return nil
}

// PutProviderRegistration creates or replaces the registration of
// r.Namespace in r.SubscriptionID; the stored namespace keeps the case of the
// first PUT. It returns EInvalid without a subscription or namespace.
func (s *Store) PutProviderRegistration(ctx context.Context, r *keyhold.ProviderRegistration) error {
	if r.SubscriptionID == "" || r.Namespace == "" {
		return invalid("provider registration needs a subscription and a namespace")
	}
	updated, err := encTime(r.UpdatedAt)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO provider_registrations (subscription_key, namespace_key, subscription_id, namespace,
		state, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription_key, namespace_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		key(r.SubscriptionID), key(r.Namespace), r.SubscriptionID, r.Namespace, r.State, updated)
	return err
}

const providerCols = `subscription_id, namespace, state, updated_at`

func scanProvider(r interface{ Scan(...any) error }) (*keyhold.ProviderRegistration, error) {
	p := &keyhold.ProviderRegistration{}
	err := r.Scan(&p.SubscriptionID, &p.Namespace, &p.State, dbTime{&p.UpdatedAt})
	return p, err
}

// GetProviderRegistration returns the registration of namespace
// (case-insensitive), or ENotFound if it was never registered.
func (s *Store) GetProviderRegistration(ctx context.Context, subscriptionID, namespace string) (*keyhold.ProviderRegistration, error) {
	p, err := scanProvider(s.queryRow(ctx, `SELECT `+providerCols+` FROM provider_registrations
		WHERE subscription_key = ? AND namespace_key = ?`, key(subscriptionID), key(namespace)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("provider registration %q", namespace)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return p, nil
}

// ListProviderRegistrations returns a subscription's provider registrations
// ordered by namespace, case-insensitively.
func (s *Store) ListProviderRegistrations(ctx context.Context, subscriptionID string) ([]*keyhold.ProviderRegistration, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.ProviderRegistration, error) { return scanProvider(r) },
		`SELECT `+providerCols+` FROM provider_registrations WHERE subscription_key = ? ORDER BY namespace_key`,
		key(subscriptionID))
}

// PutFeatureRegistration creates or replaces a feature registration; the
// stored namespace and name keep the case of the first PUT. It returns
// EInvalid without a subscription, namespace or name.
func (s *Store) PutFeatureRegistration(ctx context.Context, f *keyhold.FeatureRegistration) error {
	if f.SubscriptionID == "" || f.Namespace == "" || f.Name == "" {
		return invalid("feature registration needs a subscription, a namespace and a name")
	}
	updated, err := encTime(f.UpdatedAt)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO feature_registrations (subscription_key, namespace_key, name_key, subscription_id,
		namespace, name, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription_key, namespace_key, name_key) DO UPDATE SET state = excluded.state,
		updated_at = excluded.updated_at`,
		key(f.SubscriptionID), key(f.Namespace), key(f.Name), f.SubscriptionID, f.Namespace, f.Name, f.State, updated)
	return err
}

const featureCols = `subscription_id, namespace, name, state, updated_at`

func scanFeature(r interface{ Scan(...any) error }) (*keyhold.FeatureRegistration, error) {
	f := &keyhold.FeatureRegistration{}
	err := r.Scan(&f.SubscriptionID, &f.Namespace, &f.Name, &f.State, dbTime{&f.UpdatedAt})
	return f, err
}

// GetFeatureRegistration returns the registration of namespace/name
// (case-insensitive), or ENotFound if it was never registered.
func (s *Store) GetFeatureRegistration(ctx context.Context, subscriptionID, namespace, name string) (*keyhold.FeatureRegistration, error) {
	f, err := scanFeature(s.queryRow(ctx, `SELECT `+featureCols+` FROM feature_registrations
		WHERE subscription_key = ? AND namespace_key = ? AND name_key = ?`,
		key(subscriptionID), key(namespace), key(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("feature registration %q", namespace+"/"+name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return f, nil
}

// ListFeatureRegistrations returns a subscription's feature registrations in
// namespace (case-insensitive; "" for all), ordered by namespace and name.
func (s *Store) ListFeatureRegistrations(ctx context.Context, subscriptionID, namespace string) ([]*keyhold.FeatureRegistration, error) {
	var w where
	w.add("subscription_key = ?", key(subscriptionID))
	if namespace != "" {
		w.add("namespace_key = ?", key(namespace))
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.FeatureRegistration, error) { return scanFeature(r) },
		`SELECT `+featureCols+` FROM feature_registrations`+w.String()+` ORDER BY namespace_key, name_key`, w.args...)
}

// PutResource creates or replaces the resource with r.ID (case-insensitive).
// The stored id and the created half of SystemData keep the values of the
// first PUT; everything else is replaced. It returns EInvalid without an id
// or with SKU, Identity or Properties that are not valid JSON.
func (s *Store) PutResource(ctx context.Context, r *keyhold.Resource) error {
	if r.ID == "" {
		return invalid("resource id is required")
	}
	tags, err := encJSON(r.Tags)
	if err != nil {
		return err
	}
	sku, err := encRaw("sku", r.SKU)
	if err != nil {
		return err
	}
	identity, err := encRaw("identity", r.Identity)
	if err != nil {
		return err
	}
	props, err := encRaw("properties", r.Properties)
	if err != nil {
		return err
	}
	sd := r.SystemData
	ts, err := encTimes(sd.CreatedAt, sd.LastModifiedAt)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO resources (id_key, id, subscription_key, subscription_id, resource_group, rg_key,
		type, type_key, name, name_key, location, kind, tags, sku, identity, properties,
		created_by, created_by_type, created_at, last_modified_by, last_modified_by_type, last_modified_at, etag)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id_key) DO UPDATE SET subscription_key = excluded.subscription_key,
		subscription_id = excluded.subscription_id, resource_group = excluded.resource_group, rg_key = excluded.rg_key,
		type = excluded.type, type_key = excluded.type_key, name = excluded.name,
		name_key = excluded.name_key, location = excluded.location,
		kind = excluded.kind, tags = excluded.tags, sku = excluded.sku, identity = excluded.identity,
		properties = excluded.properties, last_modified_by = excluded.last_modified_by,
		last_modified_by_type = excluded.last_modified_by_type, last_modified_at = excluded.last_modified_at,
		etag = excluded.etag`,
		key(r.ID), r.ID, key(r.SubscriptionID), r.SubscriptionID, r.ResourceGroup, key(r.ResourceGroup),
		r.Type, key(r.Type), r.Name, key(r.Name), r.Location, r.Kind, tags, sku, identity, props,
		sd.CreatedBy, sd.CreatedByType, ts[0], sd.LastModifiedBy, sd.LastModifiedByType, ts[1], r.ETag)
	return err
}

const resourceCols = `id, subscription_id, resource_group, type, name, location, kind, tags, sku, identity, properties,
	created_by, created_by_type, created_at, last_modified_by, last_modified_by_type, last_modified_at, etag`

func scanResource(r interface{ Scan(...any) error }) (*keyhold.Resource, error) {
	res := &keyhold.Resource{}
	sd := &res.SystemData
	err := r.Scan(&res.ID, &res.SubscriptionID, &res.ResourceGroup, &res.Type, &res.Name, &res.Location, &res.Kind,
		dbJSON{&res.Tags}, dbRaw{&res.SKU}, dbRaw{&res.Identity}, dbRaw{&res.Properties},
		&sd.CreatedBy, &sd.CreatedByType, dbTime{&sd.CreatedAt},
		&sd.LastModifiedBy, &sd.LastModifiedByType, dbTime{&sd.LastModifiedAt}, &res.ETag)
	return res, err
}

// GetResource returns the resource with id (case-insensitive), or ENotFound.
func (s *Store) GetResource(ctx context.Context, id string) (*keyhold.Resource, error) {
	res, err := scanResource(s.queryRow(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = ?`, key(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("resource %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return res, nil
}

// DeleteResource deletes the resource with id (case-insensitive). It returns
// ENotFound if there is no such resource.
func (s *Store) DeleteResource(ctx context.Context, id string) error {
	n, err := s.execN(ctx, `DELETE FROM resources WHERE id_key = ?`, key(id))
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("resource %q", id)
	}
	return nil
}

// ListResources returns the resources that match f, ordered by id
// case-insensitively. A filter by name (with or without type) is one index
// range, since the Key Vault data plane finds its vault by name on every
// request.
func (s *Store) ListResources(ctx context.Context, f keyhold.ResourceFilter) ([]*keyhold.Resource, error) {
	var w where
	if f.SubscriptionID != "" {
		w.add("subscription_key = ?", key(f.SubscriptionID))
	}
	if f.ResourceGroup != "" {
		w.add("rg_key = ?", key(f.ResourceGroup))
	}
	if f.Type != "" {
		w.add("type_key = ?", key(f.Type))
	}
	if f.Name != "" {
		w.add("name_key = ?", key(f.Name))
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Resource, error) { return scanResource(r) },
		`SELECT `+resourceCols+` FROM resources`+w.String()+` ORDER BY id_key`, w.args...)
}
