package keyvault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// Limits of Key Vault's lists and tags.
const (
	defaultMaxResults = 25
	maxTags           = 15
)

// keyStore returns the store's keys. The type assertion keeps this package
// compiling against stores that predate keyhold.KeyStore.
func (s *Service) keyStore() (keyhold.KeyStore, error) {
	ks, ok := any(s.cfg.Store).(keyhold.KeyStore)
	if !ok {
		return nil, keyhold.Internal("keyvault", errors.New("the store does not keep vault keys"))
	}
	return ks, nil
}

// keyNotFound is Key Vault's 404 for a key or version that does not exist
// or is soft-deleted.
func keyNotFound(name, version string) error {
	id := name
	if version != "" {
		id += "/" + version
	}
	return keyhold.Errorc(keyhold.ENotFound, codeKeyNotFound,
		"A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id)
}

func deletedKeyNotFound(name string) error {
	return keyhold.Errorc(keyhold.ENotFound, codeKeyNotFound, "Deleted Key not found: %s", name)
}

func deletedButRecoverable(name string) error {
	return kvErr(keyhold.EConflict, codeConflict, innerDeletedRecoverable,
		"Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", name)
}

// getVersion reads a key version (the latest for version ""), turning the
// store's ENotFound into Key Vault's KeyNotFound.
func (s *Service) getVersion(ctx context.Context, vault, name, version string) (*keyhold.KeyVersion, error) {
	ks, err := s.keyStore()
	if err != nil {
		return nil, err
	}
	if version != "" && !keycrypto.IsVersion(version) {
		return nil, keyNotFound(name, version)
	}
	v, err := ks.GetKeyVersion(ctx, vault, name, version)
	if keyhold.IsNotFound(err) {
		return nil, keyNotFound(name, version)
	}
	return v, err
}

// publish announces a change to a key. Scope is the key's resource-style id;
// Detail names the version where one is concerned.
func (s *Service) publish(ctx context.Context, kind string, vault *keyhold.Resource, p *Properties, name, detail string) {
	if s.cfg.Events == nil {
		return
	}
	s.cfg.Events.Publish(ctx, events.Event{Kind: kind, TenantID: p.TenantID, Scope: vault.ID + "/keys/" + name, Time: s.now(), Detail: detail})
}

// writeJSON writes a 200 answer.
func writeJSON(rq *request, v any) error {
	httpapi.WriteJSON(rq.w, http.StatusOK, v)
	return nil
}

// decode reads a JSON request body; every malformed body is a 400
// BadParameter that says what is wrong.
func decode(rq *request, v any) error {
	return httpapi.DecodeJSON(rq.r, v, codeBadParameter)
}

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return badParam("a key may have at most %d tags, not %d", maxTags, len(tags))
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 || len(v) > 256 {
			return badParam("tag names must be 1 to 512 characters and values at most 256")
		}
	}
	return nil
}

// checkNewAttributes validates the attributes of a create or import and
// returns enabled, nbf and exp.
func checkNewAttributes(a *KeyAttributes) (bool, time.Time, time.Time, error) {
	if a == nil {
		return true, time.Time{}, time.Time{}, nil
	}
	if a.Exportable != nil && *a.Exportable {
		return false, time.Time{}, time.Time{}, badParam("exportable keys are not supported: the private part of a key never leaves this vault")
	}
	nbf, exp := fromUnix(a.NotBefore), fromUnix(a.Expires)
	if !nbf.IsZero() && !exp.IsZero() && !exp.After(nbf) {
		return false, time.Time{}, time.Time{}, badParam("the expiry time (exp) must be after the activation time (nbf)")
	}
	return a.Enabled == nil || *a.Enabled, nbf, exp, nil
}

// checkHSM refuses -HSM key types unless the vault is premium and the
// server has a hardware security module that can make them.
func (s *Service) checkHSM(rq *request, kty string) error {
	if !keycrypto.IsHSM(kty) {
		return nil
	}
	if !strings.EqualFold(rq.props.SKU.Name, "premium") {
		return badParam("key type %s needs a premium vault; vault %s is %s", kty, rq.vaultName(), rq.props.SKU.Name)
	}
	if s.cfg.HSM == nil {
		return badParam("key type %s needs a hardware security module, and no hardware security module is configured on this server (keyhold serve has no --hsm option yet: no PKCS#11 driver exists); create an RSA or EC key instead", kty)
	}
	return badParam("key type %s is not available: the hardware security module %s cannot generate or hold keys in this version of Keyhold", kty, s.cfg.HSM.Name())
}

// storeNewVersion seals priv and stores it as a new version of name.
func (s *Service) storeNewVersion(ctx context.Context, vault *keyhold.Resource, p *Properties, v *keyhold.KeyVersion, priv *keycrypto.PrivateKey) error {
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	if s.cfg.Seal == nil {
		return keyhold.Internal("keyvault", errors.New("no master key to seal key material with"))
	}
	pub, err := json.Marshal(priv.PublicJWK())
	if err != nil {
		return keyhold.Internal("keyvault: encode public key", err)
	}
	material := priv.MarshalPrivate()
	defer material.Wipe()
	v.VaultName = vault.Name
	v.Version = keycrypto.NewVersion()
	v.Kty, v.Curve, v.KeySize = priv.Kty(), priv.Curve(), priv.Size()
	v.PublicJWK = pub
	v.SealedPrivate = s.cfg.Seal.Seal(sealLabel(vault.Name, v.Name, v.Version), material.Reveal())
	now := s.now().UTC().Truncate(time.Second)
	v.CreatedAt, v.UpdatedAt = now, now
	if _, err := ks.GetDeletedKey(ctx, vault.Name, v.Name); err == nil {
		return deletedButRecoverable(v.Name)
	} else if !keyhold.IsNotFound(err) {
		return err
	}
	if err := ks.CreateKeyVersion(ctx, v); err != nil {
		if keyhold.IsConflict(err) {
			return deletedButRecoverable(v.Name)
		}
		return err
	}
	s.cache.put(vault.Name, v.Name, v.Version, priv)
	return nil
}

// sealLabel binds sealed key material to its vault, key and version, so
// that material copied to another row does not open.
func sealLabel(vault, name, version string) string {
	return strings.ToLower("keyvault/key/" + vault + "/" + name + "/" + version)
}

// canonicalName keeps the case of an existing key's name, since names
// compare case-insensitively and kids should not change case between
// versions.
func (s *Service) canonicalName(ctx context.Context, vault, name string) string {
	ks, err := s.keyStore()
	if err != nil {
		return name
	}
	if v, err := ks.GetKeyVersion(ctx, vault, name, ""); err == nil {
		return v.Name
	}
	return name
}

func serveCreate(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		var p keyCreateParameters
		if err := decode(rq, &p); err != nil {
			return err
		}
		if len(p.ReleasePolicy) > 0 && string(p.ReleasePolicy) != "null" {
			return badParam("key release policies are not supported: the private part of a key never leaves this vault")
		}
		if err := keycrypto.CheckKty(p.Kty); err != nil {
			return err
		}
		if err := s.checkHSM(rq, p.Kty); err != nil {
			return err
		}
		ops, err := keycrypto.NormalizeKeyOps(p.Kty, p.KeyOps)
		if err != nil {
			return err
		}
		enabled, nbf, exp, err := checkNewAttributes(p.Attributes)
		if err != nil {
			return err
		}
		if err := checkTags(p.Tags); err != nil {
			return err
		}
		size := 0
		if p.KeySize != nil {
			size = *p.KeySize
			if size <= 0 {
				return badParam("key_size must be positive, not %d", size)
			}
		}
		var priv *keycrypto.PrivateKey
		if keycrypto.IsRSA(p.Kty) {
			if p.Curve != "" {
				return badParam("a curve (crv) cannot be given for key type %s", p.Kty)
			}
			exp := 0
			if p.PublicExponent != nil {
				exp = *p.PublicExponent
			}
			priv, err = keycrypto.GenerateRSA(p.Kty, size, exp, nil)
		} else {
			if p.PublicExponent != nil {
				return badParam("public_exponent cannot be given for key type %s", p.Kty)
			}
			priv, err = keycrypto.Generate(p.Kty, size, p.Curve, nil)
		}
		if err != nil {
			return err
		}
		v := &keyhold.KeyVersion{Name: s.canonicalName(rq.ctx(), rq.vaultName(), name), KeyOps: ops,
			Enabled: enabled, NotBefore: nbf, Expires: exp, Tags: p.Tags}
		if err := s.storeNewVersion(rq.ctx(), rq.vault, rq.props, v, priv); err != nil {
			return err
		}
		s.publish(rq.ctx(), events.KeyCreated, rq.vault, rq.props, v.Name, "version "+v.Version)
		return rq.writeBundle(v)
	}
}

func serveImport(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		var p keyImportParameters
		if err := decode(rq, &p); err != nil {
			return err
		}
		if p.Key == nil {
			return badParam("the key to import (key) is missing")
		}
		if len(p.ReleasePolicy) > 0 && string(p.ReleasePolicy) != "null" {
			return badParam("key release policies are not supported: the private part of a key never leaves this vault")
		}
		jwk := *p.Key
		kty := jwk.Kty
		if p.HSM != nil && *p.HSM {
			switch kty {
			case keycrypto.KtyRSA:
				kty = keycrypto.KtyRSAHSM
			case keycrypto.KtyEC:
				kty = keycrypto.KtyECHSM
			}
		}
		if err := keycrypto.CheckKty(kty); err != nil {
			return err
		}
		if err := s.checkHSM(rq, kty); err != nil {
			return err
		}
		priv, err := keycrypto.ImportJWK(jwk)
		if err != nil {
			return err
		}
		ops, err := keycrypto.NormalizeKeyOps(kty, jwk.KeyOps)
		if err != nil {
			return err
		}
		enabled, nbf, exp, err := checkNewAttributes(p.Attributes)
		if err != nil {
			return err
		}
		if err := checkTags(p.Tags); err != nil {
			return err
		}
		v := &keyhold.KeyVersion{Name: s.canonicalName(rq.ctx(), rq.vaultName(), name), KeyOps: ops,
			Enabled: enabled, NotBefore: nbf, Expires: exp, Tags: p.Tags}
		if err := s.storeNewVersion(rq.ctx(), rq.vault, rq.props, v, priv); err != nil {
			return err
		}
		s.publish(rq.ctx(), events.KeyCreated, rq.vault, rq.props, v.Name, "imported version "+v.Version)
		return rq.writeBundle(v)
	}
}

func serveGet(name, version string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		v, err := s.getVersion(rq.ctx(), rq.vaultName(), name, version)
		if err != nil {
			return err
		}
		return rq.writeBundle(v)
	}
}

func serveUpdate(name, version string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		var p keyUpdateParameters
		if err := decode(rq, &p); err != nil {
			return err
		}
		if len(p.ReleasePolicy) > 0 && string(p.ReleasePolicy) != "null" {
			return badParam("key release policies are not supported: the private part of a key never leaves this vault")
		}
		if err := checkTags(p.Tags); err != nil {
			return err
		}
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		v, err := s.getVersion(rq.ctx(), rq.vaultName(), name, version)
		if err != nil {
			return err
		}
		wasEnabled := v.Enabled
		if p.KeyOps != nil {
			ops, err := keycrypto.NormalizeKeyOps(v.Kty, p.KeyOps)
			if err != nil {
				return err
			}
			v.KeyOps = ops
		}
		if a := p.Attributes; a != nil {
			if a.Exportable != nil && *a.Exportable {
				return badParam("exportable keys are not supported: the private part of a key never leaves this vault")
			}
			if a.Enabled != nil {
				v.Enabled = *a.Enabled
			}
			// Zero clears nbf or exp, as the SDKs send it to remove one.
			if a.NotBefore != nil {
				v.NotBefore = fromUnix(a.NotBefore)
			}
			if a.Expires != nil {
				v.Expires = fromUnix(a.Expires)
			}
			if !v.NotBefore.IsZero() && !v.Expires.IsZero() && !v.Expires.After(v.NotBefore) {
				return badParam("the expiry time (exp) must be after the activation time (nbf)")
			}
		}
		if p.Tags != nil {
			v.Tags = p.Tags
		}
		v.UpdatedAt = s.now().UTC().Truncate(time.Second)
		if err := ks.UpdateKeyVersion(rq.ctx(), v); err != nil {
			if keyhold.IsNotFound(err) {
				return keyNotFound(name, version)
			}
			return err
		}
		kind := events.KeyChanged
		switch {
		case wasEnabled && !v.Enabled:
			kind = events.KeyDisabled
		case !wasEnabled && v.Enabled:
			kind = events.KeyEnabled
		}
		s.publish(rq.ctx(), kind, rq.vault, rq.props, v.Name, "version "+v.Version)
		return rq.writeBundle(v)
	}
}

// writeBundle answers with v as a KeyBundle.
func (rq *request) writeBundle(v *keyhold.KeyVersion) error {
	b, err := rq.bundle(v)
	if err != nil {
		return err
	}
	return writeJSON(rq, b)
}

// writeDeletedBundle answers with d as a DeletedKeyBundle.
func (rq *request) writeDeletedBundle(d *keyhold.DeletedKey) error {
	b, err := rq.deletedBundle(d)
	if err != nil {
		return err
	}
	return writeJSON(rq, b)
}

// deletedKey reads the deleted key name of the request's vault; a key that
// is not in the deleted state is 404 KeyNotFound, as Key Vault answers.
func deletedKey(rq *request, ks keyhold.KeyStore, name string) (*keyhold.DeletedKey, error) {
	d, err := ks.GetDeletedKey(rq.ctx(), rq.vaultName(), name)
	if keyhold.IsNotFound(err) {
		return nil, deletedKeyNotFound(name)
	}
	return d, err
}

func serveDelete(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Second)
		purgeAt := now.AddDate(0, 0, rq.props.RetentionDays())
		d, err := ks.DeleteKey(rq.ctx(), rq.vaultName(), name, now, purgeAt)
		if keyhold.IsNotFound(err) {
			return keyNotFound(name, "")
		}
		if err != nil {
			return err
		}
		s.cache.drop(rq.vaultName(), name)
		s.publish(rq.ctx(), events.KeyDeleted, rq.vault, rq.props, d.Latest.Name, "")
		return rq.writeDeletedBundle(d)
	}
}

func serveGetDeleted(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		d, err := deletedKey(rq, ks, name)
		if err != nil {
			return err
		}
		return rq.writeDeletedBundle(d)
	}
}

func serveRecover(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		if err := ks.RecoverKey(rq.ctx(), rq.vaultName(), name); err != nil {
			if keyhold.IsNotFound(err) {
				return deletedKeyNotFound(name)
			}
			return err
		}
		v, err := s.getVersion(rq.ctx(), rq.vaultName(), name, "")
		if err != nil {
			return err
		}
		s.publish(rq.ctx(), events.KeyRecovered, rq.vault, rq.props, v.Name, "")
		return rq.writeBundle(v)
	}
}

func servePurge(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		d, err := deletedKey(rq, ks, name)
		if err != nil {
			return err
		}
		if rq.props.PurgeProtected() && s.now().Before(d.ScheduledPurgeAt) {
			return keyhold.Errorc(keyhold.EForbidden, codeForbidden,
				`Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.`)
		}
		if err := ks.PurgeKey(rq.ctx(), rq.vaultName(), name); err != nil {
			if keyhold.IsNotFound(err) {
				return deletedKeyNotFound(name)
			}
			return err
		}
		s.cache.drop(rq.vaultName(), name)
		s.publish(rq.ctx(), events.KeyPurged, rq.vault, rq.props, d.Latest.Name, "")
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func serveRotate(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		pol, err := s.rotationPolicy(rq.ctx(), rq.vaultName(), name)
		if err != nil {
			return err
		}
		v, err := s.rotate(rq.ctx(), rq.vault, rq.props, name, pol)
		if err != nil {
			return err
		}
		return rq.writeBundle(v)
	}
}

// rotate makes a new version of a key with the latest version's type, size,
// curve, key_ops and tags, and an expiry from the rotation policy's
// expiryTime if it has one. ENotFound (KeyNotFound) if the key does not exist.
func (s *Service) rotate(ctx context.Context, vault *keyhold.Resource, p *Properties, name string, pol *rotationPolicy) (*keyhold.KeyVersion, error) {
	latest, err := s.getVersion(ctx, vault.Name, name, "")
	if err != nil {
		return nil, err
	}
	if keycrypto.IsHSM(latest.Kty) {
		return nil, badParam("key %s is of type %s, which this server cannot rotate without a hardware security module", latest.Name, latest.Kty)
	}
	var priv *keycrypto.PrivateKey
	if keycrypto.IsRSA(latest.Kty) {
		priv, err = keycrypto.GenerateRSA(latest.Kty, latest.KeySize, 0, nil)
	} else {
		priv, err = keycrypto.Generate(latest.Kty, 0, latest.Curve, nil)
	}
	if err != nil {
		return nil, err
	}
	v := &keyhold.KeyVersion{Name: latest.Name, KeyOps: latest.KeyOps, Enabled: true, Tags: latest.Tags}
	if pol != nil && pol.expiry != nil {
		v.Expires = pol.expiry.addTo(s.now().UTC().Truncate(time.Second))
	}
	if err := s.storeNewVersion(ctx, vault, p, v, priv); err != nil {
		return nil, err
	}
	s.publish(ctx, events.KeyRotated, vault, p, v.Name, "new version "+v.Version)
	return v, nil
}

// page reads the paging parameters of a list: the cursor from $skiptoken
// and the page size from maxresults (1 to 25).
func page(rq *request) (after string, limit int, err error) {
	q := rq.r.URL.Query()
	limit = defaultMaxResults
	if m := q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > defaultMaxResults {
			return "", 0, badParam("maxresults must be a number from 1 to %d, not %q", defaultMaxResults, m)
		}
		limit = n
	}
	if t := q.Get("$skiptoken"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		if err != nil {
			return "", 0, badParam("the $skiptoken is not one this vault issued")
		}
		after = string(b)
	}
	return after, limit, nil
}

// nextLink is the absolute URL of the page after cursor, with the
// api-version the pager must keep sending.
func nextLink(rq *request, path, cursor string, limit int) *string {
	q := url.Values{}
	q.Set("api-version", rq.apiVersion)
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(cursor)))
	if rq.r.URL.Query().Get("maxresults") != "" {
		q.Set("maxresults", strconv.Itoa(limit))
	}
	link := rq.base + path + "?" + q.Encode()
	return &link
}

func (s *Service) serveListKeys(rq *request) error {
	after, limit, err := page(rq)
	if err != nil {
		return err
	}
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	list, err := ks.ListKeys(rq.ctx(), rq.vaultName(), after, limit+1)
	if err != nil {
		return err
	}
	return writePage(rq, list, limit, "/keys",
		func(v *keyhold.KeyVersion) string { return strings.ToLower(v.Name) },
		func(v *keyhold.KeyVersion) KeyItem { return rq.item(v, rq.keyID(v.Name)) })
}

// writePage writes one page of a list: list holds up to limit+1 items (the
// extra one only says there is more), cursor gives the item a next page
// starts after, and item renders one.
func writePage[T any](rq *request, list []T, limit int, path string, cursor func(T) string, item func(T) KeyItem) error {
	res := KeyListResult{Value: []KeyItem{}}
	for i, v := range list {
		if i == limit {
			res.NextLink = nextLink(rq, path, cursor(list[i-1]), limit)
			break
		}
		res.Value = append(res.Value, item(v))
	}
	return writeJSON(rq, res)
}

func serveListVersions(name string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		after, limit, err := page(rq)
		if err != nil {
			return err
		}
		ks, err := s.keyStore()
		if err != nil {
			return err
		}
		list, err := ks.ListKeyVersions(rq.ctx(), rq.vaultName(), name, after, limit+1)
		if err != nil {
			return err
		}
		if len(list) == 0 && after == "" {
			return keyNotFound(name, "")
		}
		return writePage(rq, list, limit, "/keys/"+name+"/versions",
			func(v *keyhold.KeyVersion) string { return v.Version },
			func(v *keyhold.KeyVersion) KeyItem { return rq.item(v, rq.versionID(v)) })
	}
}

func (s *Service) serveListDeleted(rq *request) error {
	after, limit, err := page(rq)
	if err != nil {
		return err
	}
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	list, err := ks.ListDeletedKeys(rq.ctx(), rq.vaultName(), after, limit+1)
	if err != nil {
		return err
	}
	return writePage(rq, list, limit, "/deletedkeys",
		func(d *keyhold.DeletedKey) string { return strings.ToLower(d.Latest.Name) },
		func(d *keyhold.DeletedKey) KeyItem {
			it := rq.item(d.Latest, rq.keyID(d.Latest.Name))
			it.RecoveryID = rq.base + "/deletedkeys/" + d.Latest.Name
			it.DeletedDate, it.ScheduledPurgeDate = unix(d.DeletedAt), unix(d.ScheduledPurgeAt)
			return it
		})
}
