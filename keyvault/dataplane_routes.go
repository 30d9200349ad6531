package keyvault

import (
	"net/http"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// Data actions of the keys data plane, as Azure RBAC names them (the
// built-in Key Vault roles in package rbac grant them).
const (
	ActionKeysRead           = "Microsoft.KeyVault/vaults/keys/read"
	ActionKeysCreate         = "Microsoft.KeyVault/vaults/keys/create/action"
	ActionKeysImport         = "Microsoft.KeyVault/vaults/keys/import/action"
	ActionKeysUpdate         = "Microsoft.KeyVault/vaults/keys/update/action"
	ActionKeysDelete         = "Microsoft.KeyVault/vaults/keys/delete"
	ActionKeysBackup         = "Microsoft.KeyVault/vaults/keys/backup/action"
	ActionKeysRestore        = "Microsoft.KeyVault/vaults/keys/restore/action"
	ActionKeysRelease        = "Microsoft.KeyVault/vaults/keys/release/action"
	ActionKeysEncrypt        = "Microsoft.KeyVault/vaults/keys/encrypt/action"
	ActionKeysDecrypt        = "Microsoft.KeyVault/vaults/keys/decrypt/action"
	ActionKeysWrap           = "Microsoft.KeyVault/vaults/keys/wrap/action"
	ActionKeysUnwrap         = "Microsoft.KeyVault/vaults/keys/unwrap/action"
	ActionKeysSign           = "Microsoft.KeyVault/vaults/keys/sign/action"
	ActionKeysVerify         = "Microsoft.KeyVault/vaults/keys/verify/action"
	ActionKeysRotate         = "Microsoft.KeyVault/vaults/keys/rotate/action"
	ActionRotationPolicyRead = "Microsoft.KeyVault/vaults/keyrotationpolicies/read"
	ActionRotationPolicySet  = "Microsoft.KeyVault/vaults/keyrotationpolicies/write"
	ActionDeletedKeysRead    = "Microsoft.KeyVault/vaults/deletedKeys/read"
	ActionDeletedKeysRecover = "Microsoft.KeyVault/vaults/deletedKeys/recover/action"
	ActionDeletedKeysPurge   = "Microsoft.KeyVault/vaults/deletedKeys/delete"
	ActionRNG                = "Microsoft.KeyVault/vaults/rng/action"
)

// cryptoOps maps the operation segment of a URL (lower-cased: clients send
// wrapKey, wrapkey and WRAPKEY alike) to the key_ops value, the access-policy
// permission and the data action it needs.
var cryptoOps = map[string]struct{ keyOp, action string }{
	"encrypt":   {keycrypto.OpEncrypt, ActionKeysEncrypt},
	"decrypt":   {keycrypto.OpDecrypt, ActionKeysDecrypt},
	"wrapkey":   {keycrypto.OpWrapKey, ActionKeysWrap},
	"unwrapkey": {keycrypto.OpUnwrapKey, ActionKeysUnwrap},
	"sign":      {keycrypto.OpSign, ActionKeysSign},
	"verify":    {keycrypto.OpVerify, ActionKeysVerify},
}

// reservedSegments may follow a key name and so can never be versions.
var reservedSegments = map[string]bool{
	"versions": true, "rotationpolicy": true, "create": true, "rotate": true, "backup": true,
	"restore": true, "release": true, "attestation": true,
}

// route maps a method and the path after /vaults/{name}/ to an operation.
// It returns 400 BadParameter for a malformed key name or a method a path
// does not take, and 404 for a path the data plane does not have.
func route(method, rest string) (operation, error) {
	segs := strings.Split(rest, "/")
	first := strings.ToLower(segs[0])
	switch {
	case first == "rng" && len(segs) == 1:
		return want(method, http.MethodPost, operation{action: ActionRNG, readOnly: true, serve: (*Service).serveRNG})
	case first == "keys":
		return routeKeys(method, segs[1:])
	case first == "deletedkeys":
		return routeDeletedKeys(method, segs[1:])
	}
	return operation{}, notFoundPath(rest)
}

func routeKeys(method string, segs []string) (operation, error) {
	if len(segs) == 0 || len(segs) == 1 && segs[0] == "" {
		return want(method, http.MethodGet, operation{perm: "list", action: ActionKeysRead, serve: (*Service).serveListKeys})
	}
	name := segs[0]
	if len(segs) == 1 && strings.EqualFold(name, "restore") {
		return want(method, http.MethodPost, operation{perm: "restore", action: ActionKeysRestore, serve: serveUnsupported("restore")})
	}
	if !keyNameRE.MatchString(name) {
		return operation{}, badParam("the key name %q is not valid: use 1 to 127 letters, digits and hyphens", name)
	}
	switch len(segs) {
	case 1:
		switch method {
		case http.MethodPut:
			return operation{perm: "import", action: ActionKeysImport, key: name, serve: serveImport(name)}, nil
		case http.MethodDelete:
			return operation{perm: "delete", action: ActionKeysDelete, key: name, serve: serveDelete(name)}, nil
		}
		return getOrPatch(method, name, "")
	case 2:
		seg := strings.ToLower(segs[1])
		switch {
		case seg == "":
			return getOrPatch(method, name, "")
		case seg == "create":
			return want(method, http.MethodPost, operation{perm: "create", action: ActionKeysCreate, key: name, serve: serveCreate(name)})
		case seg == "rotate":
			return want(method, http.MethodPost, operation{perm: "rotate", action: ActionKeysRotate, key: name, serve: serveRotate(name)})
		case seg == "versions":
			return want(method, http.MethodGet, operation{perm: "list", action: ActionKeysRead, key: name, serve: serveListVersions(name)})
		case seg == "rotationpolicy":
			if method == http.MethodPut {
				return operation{perm: "setrotationpolicy", action: ActionRotationPolicySet, key: name, serve: servePutRotationPolicy(name)}, nil
			}
			return want(method, http.MethodGet, operation{perm: "getrotationpolicy", action: ActionRotationPolicyRead, key: name, serve: serveGetRotationPolicy(name)})
		case seg == "backup":
			return want(method, http.MethodPost, operation{perm: "backup", action: ActionKeysBackup, key: name, serve: serveUnsupported("backup")})
		case seg == "release":
			return want(method, http.MethodPost, operation{perm: "release", action: ActionKeysRelease, key: name, serve: serveUnsupported("release")})
		case cryptoOps[seg].keyOp != "":
			return cryptoRoute(method, name, "", seg)
		case reservedSegments[seg]:
			return operation{}, notFoundPath(strings.Join(segs, "/"))
		}
		return getOrPatch(method, name, segs[1])
	case 3:
		version, seg := segs[1], strings.ToLower(segs[2])
		switch {
		case reservedSegments[strings.ToLower(version)]:
			return operation{}, notFoundPath(strings.Join(segs, "/"))
		case seg == "":
			return getOrPatch(method, name, version)
		case cryptoOps[seg].keyOp != "":
			return cryptoRoute(method, name, version, seg)
		case seg == "release":
			return want(method, http.MethodPost, operation{perm: "release", action: ActionKeysRelease, key: name, serve: serveUnsupported("release")})
		case seg == "attestation":
			return want(method, http.MethodGet, operation{perm: "get", action: ActionKeysRead, key: name, serve: serveUnsupported("attestation")})
		}
	}
	return operation{}, notFoundPath("keys/" + strings.Join(segs, "/"))
}

func getOrPatch(method, name, version string) (operation, error) {
	if method == http.MethodPatch {
		return operation{perm: "update", action: ActionKeysUpdate, key: name, serve: serveUpdate(name, version)}, nil
	}
	return want(method, http.MethodGet, operation{perm: "get", action: ActionKeysRead, key: name, serve: serveGet(name, version)})
}

func cryptoRoute(method, name, version, seg string) (operation, error) {
	c := cryptoOps[seg]
	return want(method, http.MethodPost, operation{perm: c.keyOp, action: c.action, key: name, readOnly: true, serve: serveCrypto(name, version, c.keyOp)})
}

func routeDeletedKeys(method string, segs []string) (operation, error) {
	if len(segs) == 0 || len(segs) == 1 && segs[0] == "" {
		return want(method, http.MethodGet, operation{perm: "list", action: ActionDeletedKeysRead, serve: (*Service).serveListDeleted})
	}
	name := segs[0]
	if !keyNameRE.MatchString(name) {
		return operation{}, badParam("the key name %q is not valid: use 1 to 127 letters, digits and hyphens", name)
	}
	switch {
	case len(segs) == 1 && method == http.MethodDelete:
		return operation{perm: "purge", action: ActionDeletedKeysPurge, key: name, serve: servePurge(name)}, nil
	case len(segs) == 1:
		return want(method, http.MethodGet, operation{perm: "get", action: ActionDeletedKeysRead, key: name, serve: serveGetDeleted(name)})
	case len(segs) == 2 && strings.EqualFold(segs[1], "recover"):
		return want(method, http.MethodPost, operation{perm: "recover", action: ActionDeletedKeysRecover, key: name, serve: serveRecover(name)})
	}
	return operation{}, notFoundPath("deletedkeys/" + strings.Join(segs, "/"))
}

// want returns op if method is the one the path takes, and a 400
// BadParameter naming the right method otherwise.
func want(method, allowed string, op operation) (operation, error) {
	if method != allowed {
		return operation{}, keyhold.Errorc(keyhold.EInvalid, codeBadParameter,
			"keyvault: method %s is not allowed here; use %s", method, allowed)
	}
	return op, nil
}

func notFoundPath(rest string) error {
	return keyhold.Errorc(keyhold.ENotFound, "NotFound", "keyvault: the vault has no path /%s", rest)
}

// serveUnsupported refuses what this vault deliberately does not do: its
// private keys never leave it, so there is no backup, restore or release.
func serveUnsupported(what string) func(*Service, *request) error {
	return func(*Service, *request) error {
		return badParam("%s is not supported: the private part of a key never leaves this vault", what)
	}
}
