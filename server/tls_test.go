package server

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The DN string SASL EXTERNAL logs in with is RabbitMQ's (rabbit_cert_info:subject): RDNs in
// reverse order, joined by ",", multi-valued RDNs by "+", RFC 4514 escapes, non-ASCII bytes and
// '~' as \XX, unknown attribute types as dotted OIDs; a multi-valued RDN in its DER (sorted) order.
func TestCertLoginName(t *testing.T) {
	atv := func(oid asn1.ObjectIdentifier, v string) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: oid, Value: v}
	}
	var (
		c  = asn1.ObjectIdentifier{2, 5, 4, 6}
		o  = asn1.ObjectIdentifier{2, 5, 4, 10}
		ou = asn1.ObjectIdentifier{2, 5, 4, 11}
		cn = asn1.ObjectIdentifier{2, 5, 4, 3}
		dc = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
		x  = asn1.ObjectIdentifier{1, 2, 3, 4}
	)
	cases := []struct {
		name   string
		rdns   pkix.RDNSequence
		dn, cn string
	}{
		{"simple", pkix.RDNSequence{{atv(c, "NL")}, {atv(o, "Warren")}, {atv(cn, "app1")}}, "CN=app1,O=Warren,C=NL", "app1"},
		{"escapes", pkix.RDNSequence{{atv(o, `a,b+c"d\e;f<g>h`)}, {atv(cn, " #lead trail ")}},
			`CN=\ #lead trail\ ,O=a\,b\+c\"d\\e\;f\<g\>h`, " #lead trail "},
		{"hash first", pkix.RDNSequence{{atv(cn, "#x")}}, `CN=\#x`, "#x"},
		{"non-ascii", pkix.RDNSequence{{atv(cn, "λ~")}}, `CN=\CE\BB\7E`, "λ~"},
		{"multi-valued and unknown", pkix.RDNSequence{{atv(dc, "org")}, {atv(ou, "ops"), atv(x, "v")}, {atv(cn, "a"), atv(cn, "b")}},
			"CN=a+CN=b,1.2.3.4=v+OU=ops,DC=org", "a,b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := asn1.Marshal(tc.rdns)
			if err != nil {
				t.Fatal(err)
			}
			cert := &x509.Certificate{RawSubject: raw}
			if got, err := certLoginName(cert, CertLoginDistinguishedName); err != nil || got != tc.dn {
				t.Errorf("DN %q, %v; want %q", got, err, tc.dn)
			}
			if got, err := certLoginName(cert, CertLoginCommonName); err != nil || got != tc.cn {
				t.Errorf("CN %q, %v; want %q", got, err, tc.cn)
			}
		})
	}
	raw, _ := asn1.Marshal(pkix.RDNSequence{{atv(o, "no cn")}})
	if _, err := certLoginName(&x509.Certificate{RawSubject: raw}, CertLoginCommonName); err == nil {
		t.Error("a subject without a CN gave a common name")
	}
}

// LoadTLS's errors name the file at fault and why; bad combinations of options are refused.
func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		f    TLSFiles
		want string
	}{
		{TLSFiles{}, "certificate file and a key file are required"},
		{TLSFiles{CertFile: missing, KeyFile: garbage}, missing},
		{TLSFiles{CertFile: garbage, KeyFile: missing}, missing},
		{TLSFiles{CertFile: garbage, KeyFile: garbage}, garbage},
	}
	for _, c := range cases {
		_, err := LoadTLS(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadTLS(%+v) = %v, want an error containing %q", c.f, err, c.want)
		}
	}
}
