package caddymodule_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-wiredb/wiredb/storage"
)

const apiSecret = "0123456789abcdef0123456789abcdef"

func apiToken(t *testing.T, rooms []string, scope string, exp time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(apiSecret)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"rooms": rooms, "scope": scope, "exp": jwt.NewNumericDate(time.Now().Add(exp))}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestHTTPAPIStatuses runs every HTTP API call and refusal against a real
// Caddy, in order (a POST creates the room the later calls read).
func TestHTTPAPIStatuses(t *testing.T) {
	dir, small := t.TempDir(), t.TempDir()
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		grace_period 1ns
	}
	http://127.0.0.1:9080 {
		wiredb /rooms/* {
			data_dir %s
			http_api
			origins app.example.com
		}
		wiredb /small/* {
			data_dir %s
			http_api
			max_message_size 200
			max_document_size 100
		}
		wiredb /jwt/* {
			data_dir %s
			http_api
			jwt {
				key %s
			}
		}
		wiredb /ro/* {
			data_dir %s
			http_api
			read_only
		}
		wiredb /plain/* {
			data_dir %s
		}
		respond "next handler" 200
	}`, dir, small, dir, apiSecret, dir, dir), "caddyfile")

	// Client 1 inserts "hi" into the root text "t"; then " there" after it.
	hi := []byte{1, 1, 1, 0, 4, 1, 1, 't', 2, 'h', 'i', 0}
	there := []byte{1, 1, 1, 2, 132, 1, 1, 6, ' ', 't', 'h', 'e', 'r', 'e', 0}
	// 80 characters of client 9 and of client 10: one fits max_document_size, two do not.
	big := append([]byte{1, 1, 9, 0, 4, 1, 1, 'b', 80}, append(bytes.Repeat([]byte{'x'}, 80), 0)...)
	big2 := append([]byte{1, 1, 10, 0, 4, 1, 1, 'c', 80}, append(bytes.Repeat([]byte{'y'}, 80), 0)...)
	write := apiToken(t, []string{"doc"}, "write", time.Hour)
	read := apiToken(t, []string{"doc"}, "read", time.Hour)
	const base = "http://127.0.0.1:9080"
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	var etag string

	for _, tc := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		body   []byte
		status int
		want   string // in the body (or, for an ETag check, "etag")
	}{
		{"GET of a room that does not exist", "GET", "/rooms/doc", nil, nil, 404, "no such room"},
		{"POST creates the room", "POST", "/rooms/doc", octet, hi, 200, `"state_vector":"AQEC"`},
		{"POST of what the room has", "POST", "/rooms/doc", octet, hi, 200, `"state_vector":"AQEC"`},
		{"POST of garbage", "POST", "/rooms/doc", octet, []byte("garbage"), 400, "invalid update"},
		{"POST of a truncated update", "POST", "/rooms/doc", octet, there[:8], 400, "invalid update"},
		{"POST without the content type", "POST", "/rooms/doc", nil, hi, 415, "application/octet-stream"},
		{"POST the second edit", "POST", "/rooms/doc", octet, there, 200, `"state_vector":"AQEI"`},
		{"GET as JSON", "GET", "/rooms/doc", map[string]string{"Accept": "application/json"}, nil, 200, `"value":"hi there"`},
		{"GET as an update", "GET", "/rooms/doc", nil, nil, 200, "etag"},
		{"GET with If-None-Match", "GET", "/rooms/doc", map[string]string{"If-None-Match": "ETAG"}, nil, 304, ""},
		{"GET with a state vector", "GET", "/rooms/doc?sv=" + base64.RawURLEncoding.EncodeToString([]byte{1, 1, 2}), nil, nil, 200, "there"},
		{"GET with a bad state vector", "GET", "/rooms/doc?sv=!!!", nil, nil, 400, "sv"},
		{"GET awareness", "GET", "/rooms/doc?awareness=1", nil, nil, 200, `"awareness":[]`},
		{"PUT", "PUT", "/rooms/doc", nil, nil, 405, "use GET or POST"},
		{"invalid room key", "GET", "/rooms/a/../b", nil, nil, 400, "invalid room key"},
		{"preflight from an allowed origin", "OPTIONS", "/rooms/doc", map[string]string{"Origin": "https://app.example.com"}, nil, 204, ""},
		{"GET from a foreign origin", "GET", "/rooms/doc", map[string]string{"Origin": "https://evil.example"}, nil, 403, "origin"},
		{"POST within max_document_size", "POST", "/small/doc", octet, big, 200, "state_vector"},
		{"POST past max_document_size", "POST", "/small/doc", octet, big2, 413, "max_document_size"},
		{"POST over max_message_size", "POST", "/small/doc", octet, bytes.Repeat([]byte{0}, 300), 413, "max_message_size"},
		{"jwt: missing token", "GET", "/jwt/doc", nil, nil, 401, "missing token"},
		{"jwt: write token as Bearer", "POST", "/jwt/doc", with(octet, "Authorization", "Bearer "+write), hi, 200, "state_vector"},
		{"jwt: write token in the query", "GET", "/jwt/doc?token=" + write, nil, nil, 200, ""},
		{"jwt: read token GET", "GET", "/jwt/doc", map[string]string{"Authorization": "Bearer " + read, "Accept": "application/json"}, nil, 200, "hi there"},
		{"jwt: read token POST", "POST", "/jwt/doc", with(octet, "Authorization", "Bearer "+read), there, 403, "read-only"},
		{"jwt: other room", "GET", "/jwt/other", map[string]string{"Authorization": "Bearer " + write}, nil, 403, "does not grant room other"},
		{"jwt: expired", "GET", "/jwt/doc", map[string]string{"Authorization": "Bearer " + apiToken(t, []string{"doc"}, "write", -time.Hour)}, nil, 401, "token expired"},
		{"read_only route: GET", "GET", "/ro/doc", map[string]string{"Accept": "application/json"}, nil, 200, "hi there"},
		{"read_only route: POST", "POST", "/ro/doc", octet, there, 403, "read-only"},
		{"no http_api: passes on", "GET", "/plain/doc", nil, nil, 200, "next handler"},
	} {
		req, err := http.NewRequest(tc.method, base+tc.path, bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			if v == "ETAG" {
				v = etag
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
			continue
		}
		switch tc.want {
		case "":
		case "etag":
			etag = resp.Header.Get("ETag")
			if etag == "" || resp.Header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("%s: ETag %q, Content-Type %q", tc.name, etag, resp.Header.Get("Content-Type"))
			}
		default:
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: body %q lacks %q", tc.name, body, tc.want)
			}
		}
		if tc.name == "preflight from an allowed origin" && resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", tc.name, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	// Refused writes changed nothing; a GET created no file.
	data, err := os.ReadFile(filepath.Join(dir, "doc.y"))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(storage.Header) + 2 + len(hi) + len(there); len(data) != want {
		t.Errorf("doc.y holds %d bytes, want %d: the two accepted updates only", len(data), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.y")); !os.IsNotExist(err) {
		t.Errorf("a refused GET created other.y (%v)", err)
	}
}
