package config

import (
	"testing"
)

// cloudAuth is a valid auth block with a tenant, so that token_url is
// derived from the cloud.
const cloudAuth = "auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: 5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19\n  client_secret: s\n"

type effective struct{ cloud, baseURL, tokenURL, resource string }

func effectiveOf(c *Config) effective {
	return effective{c.Cloud, c.PartnerCenter.BaseURL, c.Auth.TokenURL, c.Auth.Resource}
}

func TestCloudSetsEndpoints(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       effective
	}{
		{"default is public", cloudAuth, effective{
			"public", "https://api.partnercenter.microsoft.com",
			"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token",
			"https://api.partnercenter.microsoft.com",
		}},
		{"public", "cloud: public\n" + cloudAuth, effective{
			"public", "https://api.partnercenter.microsoft.com",
			"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token",
			"https://api.partnercenter.microsoft.com",
		}},
		{"china", "cloud: china\n" + cloudAuth, effective{
			"china", "https://partner.partnercenterapi.microsoftonline.cn",
			"https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/token",
			"https://partner.partnercenterapi.microsoftonline.cn",
		}},
		{"empty cloud takes the default", "cloud: ''\n" + cloudAuth, effective{
			"public", "https://api.partnercenter.microsoft.com",
			"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token",
			"https://api.partnercenter.microsoft.com",
		}},
		{
			"explicit values win over the cloud",
			"cloud: china\npartner_center:\n  base_url: https://pc.example.com/\n" + cloudAuth +
				"  token_url: https://login.example.com/t/oauth2/token\n  resource: https://audience.example.com\n",
			effective{"china", "https://pc.example.com", "https://login.example.com/t/oauth2/token", "https://audience.example.com"},
		},
		{
			"each explicit value wins alone",
			"cloud: china\n" + cloudAuth + "  resource: https://audience.example.com\n",
			effective{
				"china", "https://partner.partnercenterapi.microsoftonline.cn",
				"https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/token", "https://audience.example.com",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "t.yml", "")
			if err != nil {
				t.Fatal(err)
			}
			if got := effectiveOf(c); got != tt.want {
				t.Errorf("effective values:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestCloudRefused(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"usgov", cloudAuth + "cloud: usgov\n", `t.yml:5: cloud: "usgov" is not supported: ` +
			"Partner Center documents no US Government endpoint (its US Government instance uses " +
			"https://api.partnercenter.microsoft.com): use cloud: public, or set base_url, token_url and resource"},
		{"unknown", "cloud: mars\n" + cloudAuth, `t.yml:1: cloud: "mars" is not a cloud: use public or china`},
		{"case matters", "cloud: China\n" + cloudAuth, `t.yml:1: cloud: "China" is not a cloud: use public or china`},
		{"not a string", "cloud: [public]\n" + cloudAuth, `t.yml:1: cloud: expected a single value, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "t.yml", "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse error:\n got  %v\n want %s", err, tt.want)
			}
		})
	}
}
