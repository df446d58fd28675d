package caddymodule

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes

func signToken(t *testing.T, alg jose.SignatureAlgorithm, key any, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testClaims struct {
	Exp   *jwt.NumericDate `json:"exp,omitempty"`
	Nbf   *jwt.NumericDate `json:"nbf,omitempty"`
	Iss   string           `json:"iss,omitempty"`
	Aud   string           `json:"aud,omitempty"`
	Rooms []string         `json:"rooms"`
	Scope string           `json:"scope,omitempty"`
}

func in(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(d)) }

func TestJWTAuthorize(t *testing.T) {
	j := &JWT{Key: testSecret, Issuer: "auth", Audience: "wiredb"}
	if err := j.provision(); err != nil {
		t.Fatal(err)
	}
	ok := testClaims{Exp: in(time.Hour), Iss: "auth", Aud: "wiredb", Rooms: []string{"notes/*"}, Scope: "write"}
	sign := func(c testClaims) string { return signToken(t, jose.HS256, []byte(testSecret), c) }
	with := func(f func(*testClaims)) string { c := ok; f(&c); return sign(c) }
	otherKey := signToken(t, jose.HS256, []byte(strings.Repeat("x", 32)), ok)
	good := sign(ok)
	tampered := good[:len(good)-4] + "AAAA"
	parts := strings.Split(good, ".")
	noneAlg := "eyJhbGciOiJub25lIn0." + parts[1] + "."

	for _, tc := range []struct {
		name     string
		query    string
		protocol string
		room     string
		status   int // 0: allowed
		reason   string
		readOnly bool
	}{
		{name: "write token in the query", query: good, room: "notes/1"},
		{name: "token in Sec-WebSocket-Protocol", protocol: "wiredb.token." + good, room: "notes/1"},
		{name: "read scope", query: with(func(c *testClaims) { c.Scope = "read" }), room: "notes/1", readOnly: true},
		{name: "no scope means read", query: with(func(c *testClaims) { c.Scope = "" }), room: "notes/1", readOnly: true},
		{name: "missing", room: "notes/1", status: 401, reason: "missing token"},
		{name: "expired", query: with(func(c *testClaims) { c.Exp = in(-time.Hour) }), room: "notes/1", status: 401, reason: "token expired"},
		{name: "no exp", query: with(func(c *testClaims) { c.Exp = nil }), room: "notes/1", status: 401, reason: "no exp claim"},
		{name: "not yet valid", query: with(func(c *testClaims) { c.Nbf = in(time.Hour) }), room: "notes/1", status: 401, reason: "invalid token"},
		{name: "tampered", query: tampered, room: "notes/1", status: 401, reason: "invalid token"},
		{name: "signed with another key", query: otherKey, room: "notes/1", status: 401, reason: "bad signature"},
		{name: "alg none", query: noneAlg, room: "notes/1", status: 401, reason: "invalid token"},
		{name: "garbage", query: "not.a.jwt", room: "notes/1", status: 401, reason: "invalid token"},
		{name: "wrong issuer", query: with(func(c *testClaims) { c.Iss = "evil" }), room: "notes/1", status: 401, reason: "invalid token"},
		{name: "wrong audience", query: with(func(c *testClaims) { c.Aud = "other" }), room: "notes/1", status: 401, reason: "invalid token"},
		{name: "room not granted", query: good, room: "secrets/1", status: 403, reason: "does not grant room secrets/1"},
		{name: "glob stays in its segment", query: good, room: "notes/1/2", status: 403},
		{name: "unknown scope", query: with(func(c *testClaims) { c.Scope = "admin" }), room: "notes/1", status: 403, reason: "scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/rooms/"+tc.room, nil)
			if tc.query != "" {
				r.URL.RawQuery = "token=" + tc.query
			}
			if tc.protocol != "" {
				r.Header.Set("Sec-WebSocket-Protocol", "other, "+tc.protocol)
			}
			g, err := j.authorize(r, tc.room, time.Now())
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %d %s", err.status, err.reason)
				}
				if g.readOnly != tc.readOnly {
					t.Fatalf("readOnly = %v, want %v", g.readOnly, tc.readOnly)
				}
				if g.protocol != tc.protocol {
					t.Fatalf("protocol to echo = %q, want %q", g.protocol, tc.protocol)
				}
				return
			}
			if err == nil || err.status != tc.status || !strings.Contains(err.reason, tc.reason) {
				t.Fatalf("got %v, want %d with %q", err, tc.status, tc.reason)
			}
		})
	}
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each asymmetric algorithm verifies with a PEM public key from a file,
// and refuses tokens of the other algorithms.
func TestJWTAsymmetricKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]struct {
		alg  jose.SignatureAlgorithm
		priv crypto.Signer
	}{
		"RS256": {jose.RS256, rsaKey},
		"ES256": {jose.ES256, ecKey},
		"EdDSA": {jose.EdDSA, edKey},
	}
	claims := testClaims{Exp: in(time.Hour), Rooms: []string{"**"}, Scope: "write"}
	for name, k := range keys {
		t.Run(name, func(t *testing.T) {
			der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			j := &JWT{Key: writePEM(t, "PUBLIC KEY", der), Alg: name}
			if err := j.provision(); err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.URL.RawQuery = "token=" + signToken(t, k.alg, k.priv, claims)
			if _, err := j.authorize(r, "any/room", time.Now()); err != nil {
				t.Fatalf("valid %s token refused: %s", name, err.reason)
			}
			for other, ok := range keys {
				if other == name {
					continue
				}
				r.URL.RawQuery = "token=" + signToken(t, ok.alg, ok.priv, claims)
				if _, err := j.authorize(r, "any/room", time.Now()); err == nil || err.status != 401 {
					t.Fatalf("a %s token passed a %s check: %v", other, name, err)
				}
			}
		})
	}
}

func TestJWTProvisionErrors(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privDER, _ := x509.MarshalECPrivateKey(ecKey)
	for _, tc := range []struct {
		name string
		j    JWT
		want string
	}{
		{"no key", JWT{}, "key is required"},
		{"short secret", JWT{Key: "short"}, "want at least 32"},
		{"mistyped key file", JWT{Key: "/etc/wiredb/secret.key"}, "want at least 32"},
		{"private key", JWT{Key: writePEM(t, "EC PRIVATE KEY", privDER), Alg: "ES256"}, "never a private key"},
		{"not PEM", JWT{Key: "abc", Alg: "RS256"}, "not PEM"},
		{"alg none", JWT{Key: testSecret, Alg: "none"}, "unknown alg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.j.provision(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRoomAllowed(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		key      string
		want     bool
	}{
		{[]string{"notes/42"}, "notes/42", true},
		{[]string{"notes/42"}, "notes/43", false},
		{[]string{"notes/*"}, "notes/43", true},
		{[]string{"notes/*"}, "notes/4/3", false},
		{[]string{"notes/**"}, "notes/4/3", true},
		{[]string{"notes/**"}, "notes", false},
		{[]string{"team-?/**"}, "team-a/x", true},
		{[]string{"**"}, "a/b/c", true},
		{[]string{"*"}, "a/b", false},
		{[]string{"[bad"}, "x", false},
		{nil, "x", false},
		{[]string{"a", "b/*"}, "b/c", true},
	} {
		if got := roomAllowed(tc.patterns, tc.key); got != tc.want {
			t.Errorf("roomAllowed(%q, %q) = %v, want %v", tc.patterns, tc.key, got, tc.want)
		}
	}
}
