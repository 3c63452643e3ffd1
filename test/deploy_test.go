package test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDeployFiles checks what can be checked here of the deployment files, which cannot
// be built or applied in this test: every YAML document parses and names its kind, the
// probes hit the admin listener's /healthz and /readyz, the ConfigMap's config passes
// `idbridge check`, the Service does not expose the admin port, and the Dockerfile and
// systemd unit keep their hardening.
func TestDeployFiles(t *testing.T) {
	var files []string
	filepath.WalkDir("../deploy", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatal("no YAML under deploy/")
	}
	byKind := map[string][]map[string]any{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(fh)
		for i := 0; ; i++ {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if doc == nil {
				continue
			}
			kind, _ := doc["kind"].(string)
			name, _ := dig(doc, "metadata", "name").(string)
			if kind == "" || name == "" || doc["apiVersion"] == nil {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", f, i)
			}
			byKind[kind] = append(byKind[kind], doc)
		}
		fh.Close()
	}
	for _, k := range []string{"Deployment", "ConfigMap", "Service", "HorizontalPodAutoscaler", "Secret"} {
		if len(byKind[k]) == 0 {
			t.Errorf("no %s under deploy/kubernetes", k)
		}
	}

	secrets := map[string]bool{}
	for _, d := range byKind["Deployment"] {
		containers, _ := dig(d, "spec", "template", "spec", "containers").([]any)
		if len(containers) == 0 {
			t.Fatal("Deployment has no container")
		}
		c := containers[0].(map[string]any)
		adminPort := 0
		for _, p := range c["ports"].([]any) {
			if pm := p.(map[string]any); pm["name"] == "admin" {
				adminPort = pm["containerPort"].(int)
			}
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if got := dig(c, probe, "httpGet", "path"); got != path {
				t.Errorf("%s path = %v, want %s", probe, got, path)
			}
			if got := dig(c, probe, "httpGet", "port"); got != "admin" && got != adminPort {
				t.Errorf("%s port = %v, want the admin port", probe, got)
			}
		}
		if dig(c, "securityContext", "readOnlyRootFilesystem") != true || dig(d, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
			t.Error("the container must run as non-root on a read-only root filesystem")
		}
		for _, e := range c["env"].([]any) {
			if ref, ok := dig(e.(map[string]any), "valueFrom", "secretKeyRef", "name").(string); ok {
				secrets[ref] = true
			}
		}
	}
	if !secrets["idbridge-secrets"] {
		t.Error("the Deployment does not take its secrets from the idbridge-secrets Secret")
	}
	for _, s := range byKind["Service"] {
		for _, p := range dig(s, "spec", "ports").([]any) {
			if tp := p.(map[string]any)["targetPort"]; tp == "admin" || tp == 9090 {
				t.Error("the Service exposes the admin port")
			}
		}
	}

	for _, cm := range byKind["ConfigMap"] {
		cfg, ok := dig(cm, "data", "idbridge.yaml").(string)
		if !ok {
			t.Fatal("the ConfigMap has no idbridge.yaml")
		}
		path := writeConfig(t, cfg)
		code, out, errOut := runCLIEnv(t, []string{
			"IDBRIDGE_CACHE_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
			"REDIS_PASSWORD=p", "SPOTNANA_CLIENT_ID=c", "SPOTNANA_CLIENT_SECRET=s",
			"IDBRIDGE_ADMIN_TOKEN=0123456789abcdef0123456789abcdef",
		}, "check", "--config", path)
		if code != 0 {
			t.Errorf("idbridge check on the ConfigMap's config: exit %d\n%s%s", code, out, errOut)
		}
		if !strings.Contains(cfg, "admin_listen: 0.0.0.0:9090") {
			t.Error("in a pod the admin listener must bind the pod IP for the kubelet's probes")
		}
	}

	unit, err := os.ReadFile("../deploy/systemd/idbridge.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
		"PrivateTmp=yes", "RestrictAddressFamilies=", "SystemCallFilter=@system-service",
		"ExecReload=/bin/kill -HUP $MAINPID", "ExecStart=/usr/local/bin/idbridge serve --config ",
	} {
		if !strings.Contains(string(unit), "\n"+line) {
			t.Errorf("idbridge.service lacks %q", strings.TrimSpace(line))
		}
	}

	docker, err := os.ReadFile("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "FROM gcr.io/distroless/static", "USER nonroot", "AS build"} {
		if !strings.Contains(string(docker), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// dig walks nested maps by key; nil when a step is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
