package caddyfile

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-wiredb/wiredb/caddymodule"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		input   string
		want    caddymodule.Handler
		wantErr string // substring; "" means success
		wantAt  string // where the error must point
	}{
		{name: "bare", input: `wiredb`, want: caddymodule.Handler{}},
		{name: "empty block", input: "wiredb {\n}", want: caddymodule.Handler{}},
		{
			name: "every option",
			input: `wiredb {
				data_dir /var/lib/wiredb
				room {http.request.uri.query.doc}
				max_message_size 8MiB
				max_room_key_length 100
				read_only
				fsync interval 250ms
				outbound_queue_size 1MB
				write_timeout 5s
				ping_interval 20s
				room_idle_timeout 1m
				compact 500 2MiB
				max_rooms 1000
				max_connections_per_room 50
				max_document_size 64MiB
				rate_limit 100 1MiB
			}`,
			want: caddymodule.Handler{
				DataDir:               "/var/lib/wiredb",
				Room:                  "{http.request.uri.query.doc}",
				MaxMessageSize:        8 << 20,
				MaxRoomKeyLength:      100,
				ReadOnly:              true,
				Fsync:                 "interval",
				FsyncInterval:         caddy.Duration(250 * time.Millisecond),
				OutboundQueueSize:     1000000,
				WriteTimeout:          caddy.Duration(5 * time.Second),
				PingInterval:          caddy.Duration(20 * time.Second),
				RoomIdleTimeout:       caddy.Duration(time.Minute),
				CompactRecords:        500,
				CompactBytes:          2 << 20,
				MaxRooms:              1000,
				MaxConnectionsPerRoom: 50,
				MaxDocumentSize:       64 << 20,
				RateLimitMessages:     100,
				RateLimitBytes:        1 << 20,
			},
		},
		{name: "fsync always", input: "wiredb {\nfsync always\n}", want: caddymodule.Handler{Fsync: "always"}},
		{name: "fsync never", input: "wiredb {\nfsync never\n}", want: caddymodule.Handler{Fsync: "never"}},
		{name: "unknown subdirective names the line", input: "wiredb {\n  data_dir x\n  datadir y\n}", wantErr: "unknown subdirective 'datadir'", wantAt: "at Testfile:3"},
		{name: "missing argument", input: "wiredb {\n  data_dir\n}", wantErr: "wrong argument count", wantAt: "at Testfile:2"},
		{name: "too many arguments", input: "wiredb {\n  data_dir a b\n}", wantErr: "wrong argument count", wantAt: "at Testfile:2"},
		{name: "argument after directive", input: "wiredb /a /b", wantErr: "wrong argument count"},
		{name: "read_only takes none", input: "wiredb {\n read_only yes\n}", wantErr: "wrong argument count", wantAt: "at Testfile:2"},
		{name: "duplicate", input: "wiredb {\n data_dir a\n data_dir b\n}", wantErr: "duplicate subdirective 'data_dir'", wantAt: "at Testfile:3"},
		{name: "bad size", input: "wiredb {\n max_message_size lots\n}", wantErr: "invalid size 'lots'", wantAt: "at Testfile:2"},
		{name: "bad duration", input: "wiredb {\n ping_interval soon\n}", wantErr: "invalid duration 'soon'", wantAt: "at Testfile:2"},
		{name: "bad fsync", input: "wiredb {\n fsync sometimes\n}", wantErr: "unknown fsync policy 'sometimes'", wantAt: "at Testfile:2"},
		{name: "fsync always takes no interval", input: "wiredb {\n fsync always 1s\n}", wantErr: "wrong argument count"},
		{name: "bad key length", input: "wiredb {\n max_room_key_length -3\n}", wantErr: "want a positive integer"},
		{name: "bad compact", input: "wiredb {\n compact many\n}", wantErr: "want a positive record count"},
		{
			name: "access control",
			input: `wiredb {
				origins app.example.com *.example.org
				read_only_awareness drop
				jwt {
					key /etc/wiredb/jwt.pem
					alg ES256
					issuer https://auth.example.com
					audience wiredb
				}
			}`,
			want: caddymodule.Handler{
				Origins:           []string{"app.example.com", "*.example.org"},
				ReadOnlyAwareness: "drop",
				JWT:               &caddymodule.JWT{Key: "/etc/wiredb/jwt.pem", Alg: "ES256", Issuer: "https://auth.example.com", Audience: "wiredb"},
			},
		},
		{name: "insecure origin check", input: "wiredb {\n insecure_skip_origin_check\n}", want: caddymodule.Handler{InsecureSkipOriginCheck: true}},
		{name: "origins need one", input: "wiredb {\n origins\n}", wantErr: "wrong argument count", wantAt: "at Testfile:2"},
		{name: "bad read_only_awareness", input: "wiredb {\n read_only_awareness hide\n}", wantErr: "want relay or drop", wantAt: "at Testfile:2"},
		{name: "jwt needs a key", input: "wiredb {\n jwt {\n  alg HS256\n }\n}", wantErr: "key is required"},
		{name: "jwt bad alg", input: "wiredb {\n jwt {\n  key k\n  alg none\n }\n}", wantErr: "unknown alg 'none'", wantAt: "at Testfile:4"},
		{name: "jwt unknown subdirective", input: "wiredb {\n jwt {\n  key k\n  secret s\n }\n}", wantErr: "unknown subdirective 'secret'", wantAt: "at Testfile:4"},
		{name: "rate limit of messages only", input: "wiredb {\n rate_limit 2.5\n}", want: caddymodule.Handler{RateLimitMessages: 2.5}},
		{name: "bad rate limit", input: "wiredb {\n\n rate_limit fast\n}", wantErr: "want a positive number of messages per second", wantAt: "at Testfile:3"},
		{name: "bad rate limit size", input: "wiredb {\n rate_limit 10 lots\n}", wantErr: "invalid size 'lots'", wantAt: "at Testfile:2"},
		{name: "bad max_rooms", input: "wiredb {\n max_rooms 0\n}", wantErr: "want a positive integer", wantAt: "at Testfile:2"},
		{name: "bad document size", input: "wiredb {\n max_document_size big\n}", wantErr: "invalid size 'big'", wantAt: "at Testfile:2"},
		{
			name: "cluster with every setting",
			input: `wiredb {
				cluster redis {
					url rediss://user:secret@redis.internal:6380/2
					key_prefix docs
					instance_id caddy-1
					timeout 2s
					subscription_grace 10s
					lease 1m
					checkpoint_grace 5m
				}
			}`,
			want: caddymodule.Handler{Cluster: &caddymodule.Cluster{Backend: "redis", URL: "rediss://user:secret@redis.internal:6380/2",
				KeyPrefix: "docs", InstanceID: "caddy-1", Timeout: caddy.Duration(2 * time.Second),
				SubscriptionGrace: caddy.Duration(10 * time.Second), Lease: caddy.Duration(time.Minute), CheckpointGrace: caddy.Duration(5 * time.Minute)}},
		},
		{name: "cluster needs a backend", input: "wiredb {\n cluster {\n  url redis://x\n }\n}", wantErr: "a backend is required", wantAt: "at Testfile:2"},
		{name: "cluster unknown backend", input: "wiredb {\n cluster nats {\n }\n}", wantErr: "unknown backend 'nats'", wantAt: "at Testfile:2"},
		{name: "cluster needs a url", input: "wiredb {\n cluster redis {\n  key_prefix x\n }\n}", wantErr: "url is required"},
		{name: "cluster bad url", input: "wiredb {\n cluster redis {\n  url http://x\n }\n}", wantErr: "want redis:// or rediss://", wantAt: "at Testfile:3"},
		{name: "cluster unknown setting", input: "wiredb {\n cluster redis {\n  url redis://x\n  password p\n }\n}", wantErr: "unknown subdirective 'password'", wantAt: "at Testfile:4"},
		{name: "cluster bad duration", input: "wiredb {\n cluster redis {\n  url redis://x\n  timeout never\n }\n}", wantErr: "invalid duration 'never'", wantAt: "at Testfile:4"},
		{name: "cluster bad prefix", input: "wiredb {\n cluster redis {\n  url redis://x\n  key_prefix a{b}\n }\n}", wantErr: "must not contain { or }", wantAt: "at Testfile:4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got caddymodule.Handler
			err := UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.wantAt) {
					t.Fatalf("error = %v, want it to contain %q and %q", err, tc.wantErr, tc.wantAt)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPathPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  caddy.ModuleMap
		want string
	}{
		{caddy.ModuleMap{"path": []byte(`["/rooms/*"]`)}, "/rooms/"},
		{caddy.ModuleMap{"path": []byte(`["/*"]`)}, "/"},
		{caddy.ModuleMap{"path": []byte(`["/rooms*"]`)}, "/rooms"},
		{caddy.ModuleMap{"path": []byte(`["/a/*", "/b/*"]`)}, ""},
		{caddy.ModuleMap{"path": []byte(`["/exact"]`)}, ""},
		{caddy.ModuleMap{"path": []byte(`["/rooms/*"]`), "header": []byte(`{}`)}, ""},
		{caddy.ModuleMap{"header": []byte(`{}`)}, ""},
		{nil, ""},
	} {
		if got := pathPrefix(tc.set); got != tc.want {
			t.Errorf("pathPrefix(%s) = %q, want %q", tc.set, got, tc.want)
		}
	}
}

// TestAdapt compares each testdata/*.caddyfiletest (a Caddyfile, a line of
// dashes, the JSON it must adapt to) with what the adapter produces.
func TestAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.SplitN(string(data), "----------", 2)
		if len(parts) != 2 {
			t.Fatalf("%s: no ---------- separator", f)
		}
		caddyfileText := strings.TrimSpace(parts[0]) + "\n"
		want := strings.TrimSpace(parts[1][strings.IndexByte(parts[1], '\n')+1:])
		if !caddytest.CompareAdapt(t, f, caddyfileText, "caddyfile", want) {
			t.Errorf("%s: adapted JSON differs (diff above)", f)
		}
	}
}

// A bad Caddyfile is refused with the file name and line of the problem.
func TestAdaptErrorNamesLine(t *testing.T) {
	input := "http://127.0.0.1:9080 {\n\twiredb /rooms/* {\n\t\tdata_dir ./data\n\t\tmax_mesage_size 1MiB\n\t}\n}\n"
	_, _, err := caddyconfigAdapt(input)
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:4") || !strings.Contains(err.Error(), "unknown subdirective 'max_mesage_size'") {
		t.Fatalf("error = %v, want Caddyfile:4 and the unknown subdirective", err)
	}
}

// The HTTP API and webhook subdirectives: what they accept and how they
// refuse, naming the line.
func TestAdaptWebhookErrors(t *testing.T) {
	for _, tc := range []struct {
		block, want string
		line        int
	}{
		{"webhook http://127.0.0.1:1/h {\n\t\t\tdebounce 1s\n\t\t}", "webhook: secret is required", 5},
		{"webhook http://127.0.0.1:1/h {\n\t\t\tsecret s\n\t\t\tevents room.deleted\n\t\t}", "unknown event 'room.deleted'", 5},
		{"webhook {\n\t\t}", "webhook: want a URL", 3},
		{"webhook http://127.0.0.1:1/h {\n\t\t\tsecret s\n\t\t\tdebounce soon\n\t\t}", "invalid duration 'soon'", 5},
		{"http_api yes", "wrong argument count", 3},
		{"protocols websocket", "unknown protocol 'websocket'", 3},
	} {
		input := "http://127.0.0.1:9080 {\n\twiredb /rooms/* {\n\t\t" + tc.block + "\n\t}\n}\n"
		_, _, err := caddyconfigAdapt(input)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("Caddyfile:%d", tc.line)) {
			t.Errorf("%q: error = %v, want %q at Caddyfile:%d", tc.block, err, tc.want, tc.line)
		}
	}
}
