package config

import (
	"net/url"
	"strings"
)

// DefaultCloud is the cloud used when the file names none.
const DefaultCloud = "public"

// cloudEndpoints are the three values a national cloud changes together:
// where the API is, where tokens come from and which audience they carry.
type cloudEndpoints struct {
	baseURL string
	// tokenURLTemplate (v1) and tokenURLV2Template contain "{tenant_id}",
	// replaced with the path-escaped tenant_id.
	tokenURLTemplate   string
	tokenURLV2Template string
	resource           string
}

// clouds are the Partner Center instances Microsoft documents a REST base
// URL for (learn.microsoft.com/partner-center/developer/partner-center-rest-urls).
// For China the app-only resource is the API host itself, as in Microsoft's
// PowerShell module.
var clouds = map[string]cloudEndpoints{
	"public": {DefaultBaseURL, DefaultTokenURLTemplate, DefaultTokenURLV2Template, DefaultResource},
	"china": {
		baseURL:            ChinaBaseURL,
		tokenURLTemplate:   "https://login.chinacloudapi.cn/{tenant_id}/oauth2/token",
		tokenURLV2Template: "https://login.chinacloudapi.cn/{tenant_id}/oauth2/v2.0/token",
		resource:           ChinaBaseURL,
	},
}

// ChinaBaseURL is Partner Center operated by 21Vianet.
const ChinaBaseURL = "https://partner.partnercenterapi.microsoftonline.cn"

// usgovRefusal explains why "usgov" is not a cloud: Microsoft lists the
// global endpoint for Partner Center for Microsoft Cloud for US Government,
// so a separate setting would only guess at its token authority.
const usgovRefusal = "Partner Center documents no US Government endpoint " +
	"(its US Government instance uses https://api.partnercenter.microsoft.com): " +
	"use cloud: public, or set base_url, token_url and resource"

// endpointsOf returns the endpoints of a cloud; an unknown one (reported by
// validation) gets the public cloud's, so that it causes no further errors.
func endpointsOf(cloud string) cloudEndpoints {
	if e, ok := clouds[cloud]; ok {
		return e
	}
	return clouds[DefaultCloud]
}

// applyCloud fills base_url, token_url and resource from the cloud where the
// file leaves them out: explicit values always win.
func applyCloud(c *Config) {
	e := endpointsOf(c.Cloud)
	if c.PartnerCenter.BaseURL == "" {
		c.PartnerCenter.BaseURL = e.baseURL
	}
	if c.Auth.Resource == "" {
		c.Auth.Resource = e.resource
	}
	if c.Auth.TokenURL == "" && c.Auth.TenantID != "" {
		// Client assertions (certificate, workload identity) go to the v2
		// endpoint; secrets and refresh tokens keep the v1 flow.
		template := e.tokenURLTemplate
		if m := c.Auth.Mode(); m == AuthClientCertificate || m == AuthWorkloadIdentity {
			template = e.tokenURLV2Template
		}
		c.Auth.TokenURL = strings.ReplaceAll(template, "{tenant_id}", url.PathEscape(c.Auth.TenantID))
	}
}

// cloud checks the cloud name.
func (v validator) cloud(name string) {
	switch _, known := clouds[name]; {
	case known:
	case name == "usgov":
		v.report("cloud", "%q is not supported: %s", name, usgovRefusal)
	default:
		v.report("cloud", "%q is not a cloud: use public or china", name)
	}
}
