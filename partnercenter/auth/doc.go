// Package auth obtains the bearer tokens the Partner Center client sends:
// the OAuth 2.0 client credentials and refresh token grants against the
// Microsoft identity platform, client assertions signed with a certificate
// or taken from a federated token file, and access tokens kept fresh in a
// file by something else. Every source is a partnercenter.TokenSource; it
// reports its requests to a partnercenter.Observer and its refusals as a
// *partnercenter.TokenError.
//
// Like package partnercenter it uses the standard library alone, so that
// the client's dependencies stay what they are; encrypted PKCS#8 keys are
// therefore decrypted here rather than by a third-party package.
package auth
