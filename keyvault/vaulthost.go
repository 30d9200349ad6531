package keyvault

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Host-style vault URLs: with Config.VaultDomain set, a vault's URI is
// https://<name>.<domain>[:port]/ as on *.vault.azure.net, so that the Azure
// SDKs' key-id parsers (azkeys' ID.Name and ID.Version, which take the first
// path segment as the collection) read our kids, and their challenge
// resource verification passes: it requires the request's host, port
// included, to end with "." + the host of the challenge's resource, which is
// therefore https://<domain>[:port]. Path-style URLs keep working beside them.

// hostStyle holds what New derives from Config.VaultDomain and PublicURL.
type hostStyle struct {
	// domain is the vault domain, lower case, without dots at either end;
	// empty means path-style vault URIs.
	domain string
	// scheme is the public URL's scheme.
	scheme string
	// port is ":<port>" of the public URL, or "" for the scheme's default.
	port string
}

func newHostStyle(domain, publicURL string) hostStyle {
	h := hostStyle{domain: NormalizeVaultDomain(domain), scheme: "https"}
	if u, err := url.Parse(publicURL); err == nil {
		if u.Scheme != "" {
			h.scheme = u.Scheme
		}
		if p := u.Port(); p != "" && !(h.scheme == "https" && p == "443" || h.scheme == "http" && p == "80") {
			h.port = ":" + p
		}
	}
	return h
}

// NormalizeVaultDomain returns d as the vault domain is kept: trimmed, lower
// case, without a leading or trailing dot.
func NormalizeVaultDomain(d string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(d), "."))
}

// CheckVaultDomain returns an error saying what is wrong when d (after
// NormalizeVaultDomain) cannot be a vault domain: it must be a DNS name of
// two or more labels of letters, digits and hyphens, whose last label is
// letters (so that no IP address is taken for one), without a port, scheme
// or wildcard.
func CheckVaultDomain(d string) error {
	d = NormalizeVaultDomain(d)
	labels := strings.Split(d, ".")
	if len(d) > 253-25 || len(labels) < 2 {
		return fmt.Errorf("keyvault: the vault domain %q must be a DNS name of two or more labels, such as vault.example.test", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("keyvault: the vault domain %q has an empty or malformed label %q", d, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("keyvault: the vault domain %q may hold only letters, digits, hyphens and dots (no scheme, port or wildcard)", d)
			}
		}
	}
	for _, c := range labels[len(labels)-1] {
		if c < 'a' || c > 'z' {
			return fmt.Errorf("keyvault: the vault domain %q must end with a top-level label of letters", d)
		}
	}
	return nil
}

// VaultDomain returns the domain of host-style vault URLs, or "" when vault
// URIs are path-style.
func (s *Service) VaultDomain() string { return s.host.domain }

// HostAudience returns the resource that the challenge of a host-style
// request names, https://<vault domain>[:port], which is also a token
// audience the data plane accepts; "" when vault URIs are path-style.
func (s *Service) HostAudience() string { return s.host.audience() }

// HostAudience returns what Service.HostAudience returns for a service with
// this vault domain and public URL, for wiring that needs it before the
// service exists (the token issuer's audiences).
func HostAudience(vaultDomain, publicURL string) string {
	return newHostStyle(vaultDomain, publicURL).audience()
}

func (h hostStyle) audience() string {
	if h.domain == "" {
		return ""
	}
	return "https://" + h.domain + h.port
}

// VaultHost reports whether host, a request's Host with or without a port,
// is below the vault domain, and returns the part before the domain: the
// vault's name if it names one. Case and a trailing dot are ignored.
func (s *Service) VaultHost(host string) (name string, ok bool) {
	if s.host.domain == "" || host == "" {
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name, ok = strings.CutSuffix(host, "."+s.host.domain)
	return name, ok && name != ""
}

// vaultOf finds the vault a data-plane request addresses: by its Host when
// that is below the vault domain (the whole path is then the vault's), else
// by the path /vaults/{name}/. base is the URL, without a trailing slash,
// that kids and links of the answer start with, as the client addressed the
// vault; byHost says which form it used.
func (s *Service) vaultOf(r *http.Request) (name, rest, base string, byHost, ok bool) {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	if n, isHost := s.VaultHost(r.Host); isHost {
		return n, strings.TrimPrefix(r.URL.Path, "/"), scheme + "://" + r.Host, true, true
	}
	name, rest, ok = splitVaultPath(r.URL.Path)
	return name, rest, scheme + "://" + r.Host + "/vaults/" + name, false, ok
}
