package loopback

import "testing"

func TestHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.9.8.7": true, "::1": true,
		"::ffff:127.0.0.1": true,
		"":                 false, "localhost.": false, "localhost.example.com": false, "example.com": false,
		"10.0.0.1": false, "0.0.0.0": false, "::": false, "[::1]": false, "127.0.0.1:80": false,
		"::1%lo": false, "2001:db8::1": false,
	} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestHostPort(t *testing.T) {
	for hp, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:0": true, "[::1]:9090": true,
		"127.0.0.1": false, "::1": false, "0.0.0.0:8080": false, ":8080": false,
		"example.com:443": false, "[::]:80": false,
	} {
		if got := HostPort(hp); got != want {
			t.Errorf("HostPort(%q) = %v, want %v", hp, got, want)
		}
	}
}
