package webhook

import (
	"strings"
	"testing"
	"time"
)

func TestSign(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret, body, want string
	}{
		{
			// The RFC 4231-style example from Wikipedia's HMAC page;
			// `printf %s 'The quick brown fox jumps over the lazy dog' |
			// openssl dgst -sha256 -hmac key` prints the same hex.
			name:   "known vector",
			secret: "key",
			body:   "The quick brown fox jumps over the lazy dog",
			want:   "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
		},
		{
			// A room.changed body, made with
			// printf %s '{"event":"room.changed","room":"notes/1","state_vector":"AQID","updates":3,"time":"2030-01-02T03:04:05.000Z"}' |
			//   openssl dgst -sha256 -hmac 'whsec-test'
			name:   "room.changed body",
			secret: "whsec-test",
			body:   `{"event":"room.changed","room":"notes/1","state_vector":"AQID","updates":3,"time":"2030-01-02T03:04:05.000Z"}`,
			want:   "sha256=b352f239af4822d300ecb01aac30071fd3bbaa90f7be9291109138f4af9a62c6",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Sign(tt.secret, []byte(tt.body)); got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBodies(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600)) // 03:04:05 UTC
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"room.changed", encodeChanged("notes/1", []byte{1, 2, 3}, 3, at),
			`{"event":"room.changed","room":"notes/1","state_vector":"AQID","updates":3,"time":"2030-01-02T03:04:05.000Z"}`},
		{"room.changed without a state vector", encodeChanged("a", nil, 1, at.Add(1500*time.Microsecond)),
			`{"event":"room.changed","room":"a","state_vector":"","updates":1,"time":"2030-01-02T03:04:05.001Z"}`},
		{"room.loaded", encodeLifecycle(EventRoomLoaded, "a", at),
			`{"event":"room.loaded","room":"a","time":"2030-01-02T03:04:05.000Z"}`},
		{"room.unloaded", encodeLifecycle(EventRoomUnloaded, `q"\`, at),
			`{"event":"room.unloaded","room":"q\"\\","time":"2030-01-02T03:04:05.000Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if string(tt.got) != tt.want {
				t.Errorf("body\n got %s\nwant %s", tt.got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{URL: "http://127.0.0.1:9/hook", Secret: "s"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" for valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"https and every event", func(c *Config) {
			c.URL = "https://hooks.example.test/x?y=1"
			c.Events = []string{EventRoomChanged, EventRoomLoaded, EventRoomUnloaded}
			c.Debounce, c.Timeout = time.Second, time.Second
		}, ""},
		{"relative url", func(c *Config) { c.URL = "/hook" }, "absolute http or https"},
		{"no host", func(c *Config) { c.URL = "http:///hook" }, "absolute http or https"},
		{"other scheme", func(c *Config) { c.URL = "ftp://127.0.0.1/hook" }, "absolute http or https"},
		{"unparsable url", func(c *Config) { c.URL = "http://u:hunter2@[::1" }, "webhook url"},
		{"password redacted", func(c *Config) { c.URL = "ws://u:hunter2@127.0.0.1/" }, "u:xxxxx@"},
		{"no secret", func(c *Config) { c.Secret = "" }, "secret: required"},
		{"unknown event", func(c *Config) { c.Events = []string{"room.deleted"} }, `"room.deleted": unknown`},
		{"repeated event", func(c *Config) { c.Events = []string{EventRoomLoaded, EventRoomLoaded} }, "listed twice"},
		{"negative debounce", func(c *Config) { c.Debounce = -1 }, "debounce"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate accepted %+v", c)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate: %v; want it to mention %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the URL's password: %v", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	good := Config{URL: "http://127.0.0.1:9/hook", Secret: "s"}
	sv := fixedStateVector(nil)
	tests := []struct {
		name string
		cfgs []Config
		o    Options
		want string
	}{
		{"invalid config", []Config{good, {URL: "http://127.0.0.1:9/", Secret: ""}}, Options{StateVector: sv}, "webhook 1: webhook secret"},
		{"room.changed without StateVector", []Config{good}, Options{}, "StateVector is nil"},
		{"negative queue size", []Config{good}, Options{StateVector: sv, QueueSize: -1}, "queue size"},
		{"negative max attempts", []Config{good}, Options{StateVector: sv, MaxAttempts: -1}, "max attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := New(tt.cfgs, tt.o)
			if err == nil {
				d.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v; want it to mention %q", err, tt.want)
			}
		})
	}
	// Without room.changed, StateVector is not needed.
	d, err := New([]Config{{URL: good.URL, Secret: "s", Events: []string{EventRoomLoaded}}}, Options{})
	if err != nil {
		t.Fatalf("New with room.loaded only and no StateVector: %v", err)
	}
	d.Close()
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"room.loaded","room":"a","time":"2030-01-02T03:04:05.000Z"}`)
	sig := Sign("s", body)
	tests := []struct {
		name              string
		secret, signature string
		body              []byte
		want              bool
	}{
		{"good", "s", sig, body, true},
		{"other secret", "t", sig, body, false},
		{"other body", "s", sig, append([]byte(" "), body...), false},
		{"no prefix", "s", sig[len("sha256="):], body, false},
		{"empty", "s", "", body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Verify(tt.secret, tt.body, tt.signature); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}
