package configs

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// sharedSecretKeys are the secret keys of the sections configs owns (outbound, cache,
// spotnana). The packages that own the other sections (providers, enrichment steps,
// directories) declare theirs in their registration, and the caller passes them to
// Parse. A secret key may take ${file:}, and its value never appears in an error
// message. A key is secret wherever it appears: a name is never secret in one section
// and shown in another.
var sharedSecretKeys = []string{"client_key_file", "password", "client_secret", "encryption_key", "admin_token"}

// secretSet is the set of secret key names in force for one file.
type secretSet map[string]bool

func newSecretSet(extra []string) secretSet {
	s := secretSet{}
	for _, k := range sharedSecretKeys {
		s[k] = true
	}
	for _, k := range extra {
		s[k] = true
	}
	return s
}

func (s secretSet) has(key string) bool { return s[key] }

// list names the secret keys, sorted, for an error message.
func (s secretSet) list() string {
	return strings.Join(slices.Sorted(maps.Keys(s)), ", ")
}

// resolver replaces ${env:NAME} and ${file:PATH} references in the node tree, in place,
// before anything is decoded, so that provider sections reach their packages resolved.
type resolver struct {
	file      string
	dir       string // base of relative ${file:} paths
	lookupEnv func(string) (string, bool)
	secrets   secretSet
	readFile  func(string) ([]byte, error)
	errs      Errors
	// failed holds the paths whose references could not be resolved: validation stays
	// quiet about them rather than complain about the unresolved text.
	failed map[string]bool
	// refs maps each path whose value was replaced to the text written in the file.
	refs map[string]string
	// resolved is every reference replaced, with the value it brought in.
	resolved []resolvedRef
	// offline makes an unresolvable reference a warning (LoadOffline).
	offline bool
	// absent holds, offline, the paths whose reference or file is only absent here,
	// with the file's name for a file key ("" for a reference).
	absent map[string]string
}

// missing reports a reference that cannot be resolved: an error, or offline a warning.
func (r *resolver) missing(line int, path, format string, args ...any) {
	if !r.offline {
		r.errorf(line, path, format, args...)
		return
	}
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Path: path, Warning: true,
		Msg: fmt.Sprintf(format, args...) + " here (check --strict and serve require it)"})
}

// resolvedRef is one reference and the value it was replaced with.
type resolvedRef struct{ ref, value string }

func (r *resolver) errorf(line int, path, format string, args ...any) {
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// walk resolves every string scalar below n. Aliases are not followed: the node they
// point to is resolved where its anchor is.
func (r *resolver) walk(path, key string, n *yaml.Node, depth int) {
	if n == nil || depth > 10*maxDepth {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			r.walk(path, key, c, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			r.walk(joinPath(path, k.Value), k.Value, n.Content[i+1], depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			r.walk(fmt.Sprintf("%s[%d]", path, i), "", c, depth+1)
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			r.lint(path, key, n)
		}
		if n.ShortTag() != "!!str" || !strings.Contains(n.Value, "${") {
			return
		}
		secret := r.secrets.has(key)
		fatal := len(r.errs.Fatal())
		v, ok := r.expand(path, n.Line, n.Value, secret)
		if !ok {
			if r.offline && len(r.errs.Fatal()) == fatal {
				// Only absent here: the section is still judged (check without secrets
				// must still find a bad cache_ttl beside an absent client_secret), and
				// what the absence itself causes is excused (Config.Excused).
				r.markAbsent(path, "")
				if secret {
					// A stand-in lets the checks that need a value (a bind_password
					// with a bind_dn) pass; errors at this key are excused.
					n.Value, n.Tag = "unresolved", "!!str"
				}
				return
			}
			if r.failed == nil {
				r.failed = map[string]bool{}
			}
			r.failed[path] = true
			return
		}
		if r.refs == nil {
			r.refs = map[string]string{}
		}
		r.refs[path] = n.Value
		n.Value = v
		// A plain value is typed again from its new text (max_entries: ${env:N} is an
		// integer); a quoted one, or a secret, stays a string.
		if secret || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			n.Tag = "!!str"
		} else {
			n.Tag = ""
		}
	}
}

// expand replaces the references in s. Replacement is not recursive: the text a
// reference brings in is never scanned again. It reports false after an error.
func (r *resolver) expand(path string, line int, s string, secret bool) (string, bool) {
	var b strings.Builder
	ok := true
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			// $${ is a literal ${.
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			r.errorf(line, path, "unterminated reference: ${ without } (write $${ for a literal ${)")
			return "", false
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		kind, arg, _ := strings.Cut(ref, ":")
		switch kind {
		case "env":
			if arg == "" {
				r.errorf(line, path, "${env:} needs a variable name")
				ok = false
				continue
			}
			v, found := r.lookupEnv(arg)
			if !found {
				r.missing(line, path, "environment variable %s is not set", arg)
				ok = false
				continue
			}
			r.resolved = append(r.resolved, resolvedRef{ref: "${" + ref + "}", value: v})
			b.WriteString(v)
		case "file":
			if !secret {
				r.errorf(line, path, "${file:} is allowed only in secret keys (%s)", r.secrets.list())
				ok = false
				continue
			}
			if arg == "" {
				r.errorf(line, path, "${file:} needs a path")
				ok = false
				continue
			}
			p := arg
			if !filepath.IsAbs(p) {
				p = filepath.Join(r.dir, p)
			}
			data, err := r.readFile(p)
			if err != nil {
				// The os error names the path, never the content.
				r.missing(line, path, "cannot read ${file:%s}: %v", arg, unwrapPathError(err))
				ok = false
				continue
			}
			v := strings.TrimRight(string(data), "\r\n")
			r.resolved = append(r.resolved, resolvedRef{ref: "${" + ref + "}", value: v})
			b.WriteString(v)
		default:
			shownKind := shortRef(kind)
			if secret {
				shownKind = "…"
			}
			r.errorf(line, path, "unknown reference ${%s}: use ${env:NAME} or ${file:PATH} (write $${ for a literal ${)", shownKind)
			ok = false
		}
	}
	return b.String(), ok
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func shortRef(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// Redact returns errs with every value that a reference brought into the configuration
// replaced, in each message, by the reference itself: an error from any part (a regex
// that does not compile quotes its text, a provider quotes a URL) must never print what
// an ${env:} or ${file:} held, which may be a secret whatever the key. Longer values are
// replaced first, so that one value inside another is not half shown. errs is changed in
// place and returned.
func (c *Config) Redact(errs Errors) Errors {
	if c == nil || len(c.resolved) == 0 {
		return errs
	}
	refs := slices.Clone(c.resolved)
	slices.SortStableFunc(refs, func(a, b resolvedRef) int { return len(b.value) - len(a.value) })
	var pairs []string
	for _, r := range refs {
		if r.value != "" {
			pairs = append(pairs, r.value, r.ref)
		}
	}
	if len(pairs) == 0 {
		return errs
	}
	rep := strings.NewReplacer(pairs...)
	for i, e := range errs {
		if m := rep.Replace(e.Msg); m != e.Msg {
			cp := *e
			cp.Msg = m
			errs[i] = &cp
		}
	}
	return errs
}

// fileKeys are the keys whose value names a file or folder the process reads at start.
// Keys that may hold PEM content instead of a path (client_key_file, private_key_file)
// are not listed: their ${file:} reference is what names the file.
var fileKeys = map[string]bool{
	"ca_file":          true,
	"cert_file":        true,
	"key_file":         true,
	"client_cert_file": true,
	"jwks_file":        true,
	"keys_dir":         true,
}

// absentFiles warns, offline, about each file key whose file is absent here, and marks
// its path unresolved so that the errors its absence causes are excused.
func (r *resolver) absentFiles(path, key string, n *yaml.Node, depth int) {
	if n == nil || depth > 10*maxDepth {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			r.absentFiles(p, "", c, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			r.absentFiles(joinPath(path, k.Value), k.Value, n.Content[i+1], depth+1)
		}
	case yaml.ScalarNode:
		if !fileKeys[key] || n.Value == "" || r.failed[path] || strings.Contains(n.Value, "\n") {
			return
		}
		if _, err := os.Stat(n.Value); err != nil && os.IsNotExist(err) {
			r.missing(n.Line, path, "%s is absent", n.Value)
			r.markAbsent(path, n.Value)
		}
	}
}

func (r *resolver) markAbsent(path, file string) {
	if r.absent == nil {
		r.absent = map[string]string{}
	}
	r.absent[path] = file
}

// shellVar finds what looks like a shell variable ($SPOTNANA_SECRET, $OKTA_DOMAIN): a
// value the author meant the shell to expand, which idbridge takes literally.
var shellVar = regexp.MustCompile(`(?:^|[^$])\$([A-Z_][A-Z0-9_]+)\b`)

// lint warns about a value as written: a secret inline rather than referenced, and a
// shell variable that nothing will expand. Neither message shows a value.
func (r *resolver) lint(path, key string, n *yaml.Node) {
	warn := func(format string, args ...any) {
		r.errs = append(r.errs, &Error{File: r.file, Line: n.Line, Path: path, Warning: true, Msg: fmt.Sprintf(format, args...)})
	}
	if m := shellVar.FindStringSubmatch(n.Value); m != nil {
		warn("$%s looks like a shell variable, which idbridge does not expand: write ${env:%s}", m[1], m[1])
		return
	}
	if r.secrets.has(key) && n.Value != "" && !strings.Contains(n.Value, "${") {
		warn("a secret written inline: reference it (${env:NAME} or ${file:PATH}) so that the file holds no secret")
	}
}
