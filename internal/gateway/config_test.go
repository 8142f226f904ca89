package gateway

import "testing"

// A setting counts only under its GATEWAY_ name: envconfig falls back to the
// bare tag name when given a prefix, which would let any REDIS_URL or ADDR in
// a process environment reconfigure the gateway.
func TestConfigIgnoresBareNames(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://elsewhere:6379/0")
	t.Setenv("ADDR", ":1")
	t.Setenv("AUTH", "all")
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "" || c.Addr != ":8000" || c.Auth == "all" {
		t.Fatalf("bare names configured the gateway: %+v", c)
	}
	t.Setenv("GATEWAY_ADDR", ":9")
	if c, err = LoadConfig(); err != nil || c.Addr != ":9" {
		t.Fatalf("GATEWAY_ADDR ignored: %v %q", err, c.Addr)
	}
}
