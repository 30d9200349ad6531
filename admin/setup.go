package admin

import "net/http"

// setupRoutes registers the pages that prepare a subscription for
// customer-managed keys: resource provider and feature registration, and
// enterprise policies created through a template deployment.
func (a *Admin) setupRoutes(m *http.ServeMux) {}
