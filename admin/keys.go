package admin

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// importForm is the Import a key form as re-shown after a refusal. It
// never holds the key material: the person pastes it again.
type importForm struct {
	Name, Kty, Expires string
}

// readKeyMaterial returns the uploaded key file, or else the pasted text.
// The caller wipes it.
func readKeyMaterial(r *http.Request) (keyhold.Secret, error) {
	if f, _, err := r.FormFile("keyfile"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxKeyMaterial+1))
		if err != nil {
			return keyhold.Secret{}, errNotKey
		}
		if len(strings.TrimSpace(string(b))) > 0 {
			return keyhold.NewSecret(b), nil
		}
	}
	return keyhold.NewSecret([]byte(r.PostFormValue("material"))), nil
}

// importKey imports an RSA private key (PEM PKCS#1 or PKCS#8, DER, or a
// JWK) of 2048, 3072 or 4096 bits as a new key. The material is converted
// to a JWK here, sent to the vault and wiped; it is never logged nor shown
// again, so a refused form comes back with the key field empty.
func (a *Admin) importKey(w http.ResponseWriter, r *http.Request, s *session, v vaultView) {
	f := importForm{Name: strings.TrimSpace(r.PostFormValue("import-name")), Kty: r.PostFormValue("import-kty"), Expires: strings.TrimSpace(r.PostFormValue("import-expires"))}
	v.ImportForm = f
	if !keyNameRE.MatchString(f.Name) {
		v.Errors["import-name"] = "A key name is 1 to 127 letters, digits and hyphens."
	} else {
		for _, k := range v.Keys {
			if strings.EqualFold(k.Name, f.Name) {
				v.Errors["import-name"] = "A key named " + k.Name + " already exists. Choose another name, or open the key to make a new version."
			}
		}
		for _, k := range v.Deleted {
			if strings.EqualFold(k.Name, f.Name) {
				v.Errors["import-name"] = "A deleted key named " + k.Name + " is waiting to be purged. Recover it, or choose another name."
			}
		}
	}
	if f.Kty != "RSA" && f.Kty != "RSA-HSM" {
		v.Errors["import-kty"] = "Choose RSA or RSA-HSM."
	}
	expires, msg := a.parseExpiry(f.Expires)
	if msg != "" {
		v.Errors["import-expires"] = msg
	}
	material, err := readKeyMaterial(r)
	defer material.Wipe()
	var jwk keyhold.Secret
	defer func() { jwk.Wipe() }()
	if err == nil {
		var k *rsa.PrivateKey
		if k, err = parseRSAPrivateKey(material.Reveal()); err == nil {
			jwk, err = importJWK(k)
		}
	}
	if err != nil {
		var ie importError
		if !errors.As(err, &ie) {
			a.fail(w, r, s, err)
			return
		}
		v.Errors["material"] = ie.Error()
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "vault", v)
		return
	}
	kb, err := a.client(s).ImportKeyWith(r.Context(), v.Ref.Name, f.Name, client.KeyImport{Key: json.RawMessage(jwk.Reveal()), HSM: f.Kty == "RSA-HSM", Expires: expires})
	if err != nil {
		if msg := apiMessage(err); msg != "" {
			field := "material"
			switch st := client.StatusCode(err); {
			case st == http.StatusForbidden || st == http.StatusConflict:
				field = "import-name"
			case f.Kty == "RSA-HSM" && strings.Contains(msg, "RSA-HSM"):
				field = "import-kty"
			}
			v.Errors[field] = msg
			a.render(w, r, s, client.StatusCode(err), "vault", v)
			return
		}
		a.fail(w, r, s, err)
		return
	}
	a.flash(s, fmt.Sprintf("Key %s was imported (%s %d).", f.Name, kb.Key.Kty, keySize(kb.Key.N)))
	http.Redirect(w, r, v.Ref.KeyPath(f.Name), http.StatusSeeOther)
}

// parseExpiry reads an optional expiry date, which must be in the future;
// it returns the zero time for none, or a message for the field.
func (a *Admin) parseExpiry(text string) (time.Time, string) {
	if text == "" {
		return time.Time{}, ""
	}
	t, err := time.Parse("2006-01-02", text)
	if err != nil {
		return time.Time{}, "Enter the expiry date as YYYY-MM-DD."
	}
	if !t.After(a.cfg.Now()) {
		return time.Time{}, "The expiry date must be in the future."
	}
	return t, ""
}

// keySize returns the size in bits of a base64url RSA modulus, or 0.
func keySize(n string) int {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(n, "="))
	if err != nil {
		return 0
	}
	return new(big.Int).SetBytes(b).BitLen()
}

// versionRow is one version of a key on the key page.
type versionRow struct {
	Version          string
	Enabled, Current bool
	Expired          bool
	Created, Expires string
}

type keyView struct {
	Ref   vaultRef
	Vault client.Vault
	Name  string
	// KID is the key's identifier without a version, which follows the
	// newest version; CurrentKID names the newest version itself.
	KID, CurrentKID string
	Kty             string
	Size            int
	Ops             []string
	Versions        []versionRow
	Policies        []string
	// Errors and Expiry are by version: a refused expiry and what was typed.
	Errors map[string]string
	Expiry map[string]string
}

func (a *Admin) loadKey(r *http.Request, s *session) (keyView, error) {
	ref, name := refFromRequest(r), r.PathValue("key")
	ctx, c := r.Context(), a.client(s)
	vault, err := c.GetVault(ctx, ref.Sub, ref.Group, ref.Name)
	if err != nil {
		return keyView{}, err
	}
	kb, err := c.GetKey(ctx, ref.Name, name, "")
	if err != nil {
		return keyView{}, err
	}
	items, err := c.ListKeyVersions(ctx, ref.Name, name)
	if err != nil {
		return keyView{}, err
	}
	latest := client.KeyItem{KID: kb.Key.KID}
	current := latest.Version()
	v := keyView{Ref: ref, Vault: *vault, Name: latest.Name(), Kty: kb.Key.Kty, Size: keySize(kb.Key.N), Ops: kb.Key.KeyOps,
		Errors: map[string]string{}, Expiry: map[string]string{}}
	// The identifiers are built on the vault's URI rather than taken from
	// the answer, whose scheme and host are those of the in-process call.
	v.KID = strings.TrimSuffix(vault.Properties.VaultURI, "/") + "/keys/" + url.PathEscape(v.Name)
	v.CurrentKID = v.KID + "/" + current
	now := a.cfg.Now()
	for _, it := range items {
		row := versionRow{Version: it.Version(), Enabled: it.Attributes.Enabled == nil || *it.Attributes.Enabled,
			Created: unixText(it.Attributes.Created), Expires: unixText(it.Attributes.Expires), Current: it.Version() == current}
		if e := it.Attributes.Expires; e != nil && *e != 0 && !time.Unix(*e, 0).After(now) {
			row.Expired = true
		}
		v.Versions = append(v.Versions, row)
	}
	created := map[string]int64{}
	for _, it := range items {
		if it.Attributes.Created != nil {
			created[it.Version()] = *it.Attributes.Created
		}
	}
	sort.SliceStable(v.Versions, func(i, j int) bool {
		a, b := v.Versions[i], v.Versions[j]
		if a.Current != b.Current {
			return a.Current
		}
		return created[a.Version] > created[b.Version]
	})
	v.Policies = a.policiesUsing(r, s, vault.ID, v.Name)
	return v, nil
}

// rotateKey makes a new version of a key, of the same type and size. A
// policy that follows the newest version moves to it.
func (a *Admin) rotateKey(w http.ResponseWriter, r *http.Request, s *session) {
	ref, key := refFromRequest(r), r.PathValue("key")
	kb, err := a.client(s).RotateKey(r.Context(), ref.Name, key)
	if err != nil {
		a.flashErr(w, r, s, err, ref.KeyPath(key))
		return
	}
	a.flash(s, "Key "+key+" has a new current version, "+client.KeyItem{KID: kb.Key.KID}.Version()+".")
	http.Redirect(w, r, ref.KeyPath(key), http.StatusSeeOther)
}

// versionAction enables or disables one version of a key (disabling asks
// first: it locks the environments whose policy uses that version), or
// sets or clears its expiry.
func (a *Admin) versionAction(w http.ResponseWriter, r *http.Request, s *session) {
	ref, key, version := refFromRequest(r), r.PathValue("key"), r.PathValue("version")
	back := ref.KeyPath(key)
	var u client.KeyUpdate
	var done string
	switch action := r.PostFormValue("action"); action {
	case "enable", "disable":
		on := action == "enable"
		if !on && r.PostFormValue("confirm") != "yes" {
			cv := confirmView{Title: "Disable version " + version + " of key " + key,
				Message: "Environments whose policy uses this version, or whose data is still protected by it, are disabled at once, until the version is enabled again and an administrator re-enables them.",
				Action:  back + "/versions/" + url.PathEscape(version), Button: "Disable version", Back: back,
				Fields: map[string][]string{"action": {"disable"}}}
			if vault, err := a.client(s).GetVault(r.Context(), ref.Sub, ref.Group, ref.Name); err == nil {
				for _, p := range a.policiesUsing(r, s, vault.ID, key) {
					cv.Items = append(cv.Items, "Key used by enterprise policy "+p)
				}
			}
			a.render(w, r, s, http.StatusOK, "confirm", cv)
			return
		}
		u.Enabled, done = &on, "Version "+version+" "+action+"d."
	case "expiry":
		text := strings.TrimSpace(r.PostFormValue("expires"))
		t, msg := a.parseExpiry(text)
		if msg == "" && text == "" {
			msg = "Enter the expiry date as YYYY-MM-DD, or use Clear expiry."
		}
		if msg != "" {
			v, err := a.loadKey(r, s)
			if err != nil {
				a.fail(w, r, s, err)
				return
			}
			v.Errors[version], v.Expiry[version] = msg, text
			a.render(w, r, s, http.StatusBadRequest, "key", v)
			return
		}
		u.Expires, done = &t, "Version "+version+" now expires on "+text+"."
	case "clear-expiry":
		u.Expires, done = &time.Time{}, "Version "+version+" no longer expires."
	default:
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Unknown action", Message: "Choose enable, disable, expiry or clear-expiry."})
		return
	}
	if _, err := a.client(s).UpdateKey(r.Context(), ref.Name, key, version, u); err != nil {
		a.flashErr(w, r, s, err, back)
		return
	}
	a.flash(s, done)
	http.Redirect(w, r, back, http.StatusSeeOther)
}
