package caddymodule

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// minHMACSecret is the shortest HS256 secret accepted: RFC 7518 §3.2 asks
// for a key at least as long as the hash. It also catches a mistyped key
// file path, which would otherwise become a short, guessable secret.
const minHMACSecret = 32

// tokenProtocolPrefix marks a token offered in Sec-WebSocket-Protocol, the
// one header a browser lets a page set on a WebSocket.
const tokenProtocolPrefix = "wiredb.token."

// clockSkew is the leeway given to exp and nbf.
const clockSkew = 30 * time.Second

// JWT configures signed room tokens. A request must carry a token, in the
// query (?token=) or as a Sec-WebSocket-Protocol entry
// "wiredb.token.<jwt>", signed with Key, not expired, whose "rooms" claim
// has a glob matching the room key. Its "scope" claim is "read" or
// "write"; without one the connection is read-only.
type JWT struct {
	// Key verifies signatures: the HS256 secret (at least 32 bytes), or
	// a PEM public key (or certificate) for RS256, ES256 and EdDSA. It may
	// also name a file holding either.
	Key string `json:"key"`

	// Alg is the one accepted signature algorithm: HS256 (default), RS256,
	// ES256 or EdDSA.
	Alg string `json:"alg,omitempty"`

	// Issuer and Audience, when set, must match the token's "iss" and
	// one of its "aud".
	Issuer   string `json:"issuer,omitempty"`
	Audience string `json:"audience,omitempty"`

	alg       jose.SignatureAlgorithm
	verifyKey any
}

// roomClaims are the claims a room token carries.
type roomClaims struct {
	jwt.Claims
	Rooms []string `json:"rooms"`
	Scope string   `json:"scope"`
}

// grant is what a valid token allows.
type grant struct {
	readOnly bool
	protocol string // the Sec-WebSocket-Protocol entry to echo, if any
}

// authError is a refusal before the upgrade.
type authError struct {
	status int
	reason string
}

func (e *authError) Error() string { return e.reason }

func (j *JWT) provision() error {
	if j.Key == "" {
		return errors.New("jwt: key is required")
	}
	if j.Alg == "" {
		j.Alg = "HS256"
	}
	material := []byte(j.Key)
	if data, err := os.ReadFile(j.Key); err == nil {
		material = data
	} else if !errors.Is(err, os.ErrNotExist) && !looksLikeSecretOrPEM(j.Key) {
		return fmt.Errorf("jwt: reading key file: %w", err)
	}
	switch j.Alg {
	case "HS256":
		secret := []byte(strings.TrimSpace(string(material)))
		if len(secret) < minHMACSecret {
			return fmt.Errorf("jwt: HS256 secret is %d bytes, want at least %d (or key names a file that does not exist)", len(secret), minHMACSecret)
		}
		j.alg, j.verifyKey = jose.HS256, secret
	case "RS256", "ES256", "EdDSA":
		pub, err := parsePublicKey(material)
		if err != nil {
			return fmt.Errorf("jwt: %s key: %w", j.Alg, err)
		}
		var ok bool
		switch j.Alg {
		case "RS256":
			_, ok = pub.(*rsa.PublicKey)
			j.alg = jose.RS256
		case "ES256":
			var ec *ecdsa.PublicKey
			ec, ok = pub.(*ecdsa.PublicKey)
			ok = ok && ec.Curve.Params().Name == "P-256"
			j.alg = jose.ES256
		case "EdDSA":
			_, ok = pub.(ed25519.PublicKey)
			j.alg = jose.EdDSA
		}
		if !ok {
			return fmt.Errorf("jwt: the key is a %T, not a key for %s", pub, j.Alg)
		}
		j.verifyKey = pub
	default:
		return fmt.Errorf("jwt: unknown alg %q (want HS256, RS256, ES256 or EdDSA)", j.Alg)
	}
	return nil
}

// looksLikeSecretOrPEM tells a literal key from a file name that could not
// be read for a reason other than not existing.
func looksLikeSecretOrPEM(s string) bool {
	return strings.Contains(s, "-----BEGIN") || !strings.ContainsAny(s, "/\\")
}

func parsePublicKey(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY or CERTIFICATE (never a private key)", block.Type)
}

// authorize checks the request's token for room key; an empty key (a
// request naming no room, whose Hocuspocus documents are checked one by
// one) checks the token alone.
func (j *JWT) authorize(r *http.Request, key string, now time.Time) (grant, *authError) {
	raw, protocol := tokenOf(r)
	if raw == "" {
		return grant{}, &authError{http.StatusUnauthorized, "missing token: pass ?token= or a Sec-WebSocket-Protocol entry " + tokenProtocolPrefix + "<jwt>"}
	}
	g, aerr := j.check(raw, key, now)
	g.protocol = protocol
	return g, aerr
}

// check verifies a token and what it grants in room key (any room, if key
// is empty).
func (j *JWT) check(raw, key string, now time.Time) (grant, *authError) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{j.alg})
	if err != nil {
		return grant{}, &authError{http.StatusUnauthorized, "invalid token: " + err.Error()}
	}
	var c roomClaims
	if err := tok.Claims(j.verifyKey, &c); err != nil {
		return grant{}, &authError{http.StatusUnauthorized, "invalid token: bad signature"}
	}
	if c.Expiry == nil {
		return grant{}, &authError{http.StatusUnauthorized, "invalid token: no exp claim"}
	}
	expected := jwt.Expected{Issuer: j.Issuer, Time: now}
	if j.Audience != "" {
		expected.AnyAudience = jwt.Audience{j.Audience}
	}
	if err := c.ValidateWithLeeway(expected, clockSkew); err != nil {
		if errors.Is(err, jwt.ErrExpired) {
			return grant{}, &authError{http.StatusUnauthorized, "token expired"}
		}
		return grant{}, &authError{http.StatusUnauthorized, "invalid token: " + err.Error()}
	}
	if key != "" && !roomAllowed(c.Rooms, key) {
		return grant{}, &authError{http.StatusForbidden, "token does not grant room " + key}
	}
	switch c.Scope {
	case "write":
		return grant{}, nil
	case "read", "":
		return grant{readOnly: true}, nil
	}
	return grant{}, &authError{http.StatusForbidden, fmt.Sprintf("token scope %q: want read or write", c.Scope)}
}

// tokenOf finds the token: the token query parameter, else the first
// Sec-WebSocket-Protocol entry with the token prefix.
func tokenOf(r *http.Request) (token, protocol string) {
	if t := r.URL.Query().Get("token"); t != "" {
		return t, ""
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if t, ok := strings.CutPrefix(p, tokenProtocolPrefix); ok && t != "" {
				return t, p
			}
		}
	}
	return "", ""
}

// roomAllowed matches key against the token's room globs: path.Match
// patterns, where * stays within one /-separated segment, plus "**" as a
// whole last segment for any number of segments ("team/**", or "**" for
// every room).
func roomAllowed(patterns []string, key string) bool {
	for _, p := range patterns {
		if p == "**" {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "/**"); ok {
			// The key's first segments match prefix, and more follow.
			n := strings.Count(prefix, "/") + 1
			parts := strings.SplitN(key, "/", n+1)
			if len(parts) == n+1 && matchSegments(prefix, strings.Join(parts[:n], "/")) {
				return true
			}
			continue
		}
		if ok, err := path.Match(p, key); err == nil && ok {
			return true
		}
	}
	return false
}

func matchSegments(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}
