package server

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// TLSFiles names the PEM files of a TLS listener and its peer verification, as RabbitMQ's
// ssl_options: certfile, keyfile, cacertfile, verify = verify_peer, fail_if_no_peer_cert.
type TLSFiles struct {
	// CertFile holds the server's certificate chain (leaf first), KeyFile its private key.
	CertFile, KeyFile string
	// CAFile holds the certificate authorities that client certificates are verified against.
	// It is required with VerifyPeer.
	CAFile string
	// VerifyPeer asks clients for a certificate and verifies the one given (a client without one
	// is still accepted); with FailIfNoPeerCert too, a client without a valid certificate is
	// refused in the TLS handshake.
	VerifyPeer, FailIfNoPeerCert bool
}

// TLS is a TLS configuration whose certificates can be reloaded while listeners use it: the
// *tls.Config from Config picks up the current files at every new handshake, so Reload takes
// effect for new connections and leaves established ones alone. It is safe for concurrent use.
type TLS struct {
	files TLSFiles
	cur   atomic.Pointer[tlsState]
}

// tlsState is one loaded set of files.
type tlsState struct {
	config *tls.Config // what a handshake uses
	leaf   *x509.Certificate
}

// LoadTLS reads f's files. Errors name the file and the reason.
func LoadTLS(f TLSFiles) (*TLS, error) {
	t := &TLS{files: f}
	st, err := loadTLSState(f)
	if err != nil {
		return nil, err
	}
	t.cur.Store(st)
	return t, nil
}

// Reload re-reads the files. On an error the certificates in use stay as they were.
func (t *TLS) Reload() error {
	st, err := loadTLSState(t.files)
	if err != nil {
		return err
	}
	t.cur.Store(st)
	return nil
}

// Files returns the files t reads.
func (t *TLS) Files() TLSFiles { return t.files }

// Leaf returns the server certificate currently in use (for logs: subject, serial, expiry).
func (t *TLS) Leaf() *x509.Certificate { return t.cur.Load().leaf }

// Config returns a server configuration for tls.NewListener or http.Server: TLS 1.2 or later,
// with the certificate, client CAs and client authentication of the files loaded last.
func (t *TLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load().config, nil
		},
		// Used by code that looks only at the certificate callback; GetConfigForClient wins.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &t.cur.Load().config.Certificates[0], nil
		},
	}
}

func loadTLSState(f TLSFiles) (*tlsState, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tls: a certificate file and a key file are required")
	}
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: key file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s with key %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	switch {
	case f.FailIfNoPeerCert && !f.VerifyPeer:
		return nil, errors.New("tls: fail_if_no_peer_cert needs verify_peer")
	case f.VerifyPeer && f.CAFile == "":
		return nil, errors.New("tls: verify_peer needs a CA file to verify client certificates against")
	case f.VerifyPeer && f.FailIfNoPeerCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case f.VerifyPeer:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if f.CAFile != "" {
		caPEM, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("tls: CA file %s: no PEM certificate in it", f.CAFile)
		}
		cfg.ClientCAs = pool
	}
	return &tlsState{config: cfg, leaf: cert.Leaf}, nil
}

// --- names from client certificates (SASL EXTERNAL) ---

// Values of Options.SSLCertLoginFrom, as RabbitMQ's ssl_cert_login_from.
const (
	CertLoginDistinguishedName = "distinguished_name"
	CertLoginCommonName        = "common_name"
)

// certLoginName is the user name a client certificate logs in as: its subject's distinguished
// name in RabbitMQ's string form, or its common name(s).
func certLoginName(cert *x509.Certificate, from string) (string, error) {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) != 0 {
		return "", errors.New("malformed certificate subject")
	}
	if from == CertLoginCommonName {
		// Like RabbitMQ: several CNs are joined with ",".
		var cns []string
		for _, rdn := range rdns {
			for _, atv := range rdn {
				if atv.Type.Equal(oidCommonName) {
					cns = append(cns, rdnValue(atv.Value))
				}
			}
		}
		if len(cns) == 0 {
			return "", errors.New("no name found")
		}
		return strings.Join(cns, ","), nil
	}
	return formatDN(rdns), nil
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// dnTypeNames are the attribute names RabbitMQ's rabbit_cert_info uses; other types are written
// as dotted OIDs.
var dnTypeNames = map[string]string{
	"2.5.4.4":                    "SN",
	"2.5.4.42":                   "GIVENNAME",
	"2.5.4.43":                   "INITIALS",
	"2.5.4.44":                   "GENERATIONQUALIFIER",
	"2.5.4.3":                    "CN",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "TITLE",
	"2.5.4.6":                    "C",
	"2.5.4.5":                    "SERIALNUMBER",
	"2.5.4.65":                   "PSEUDONYM",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1":       "EMAILADDRESS",
	"2.5.4.9":                    "STREET",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// formatDN writes a subject as RabbitMQ does (rabbit_cert_info:subject, RFC 4514-ish, what
// `openssl x509 -nameopt RFC2253 -subject` prints): the RDNs in reverse order joined by ",",
// the values of a multi-valued RDN joined by "+", values escaped by escapeDNValue.
func formatDN(rdns pkix.RDNSequence) string {
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		if i != len(rdns)-1 {
			b.WriteByte(',')
		}
		for j, atv := range rdns[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			name, ok := dnTypeNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(escapeDNValue(rdnValue(atv.Value)))
		}
	}
	return b.String()
}

func rdnValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// escapeDNValue escapes as RabbitMQ's escape_rdn_value: a leading space or '#' and a trailing
// space get a backslash, so do '"', '+', ',', ';', '<', '>' and '\'; bytes below 32 or from 126
// up (so every byte of a non-ASCII UTF-8 character) become \XX.
func escapeDNValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 0 && (c == ' ' || c == '#'):
			b.WriteByte('\\')
			b.WriteByte(c)
		case i == len(s)-1 && c == ' ':
			b.WriteString(`\ `)
		case strings.IndexByte(`"+,;<>\`, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 32 || c >= 126:
			b.WriteByte('\\')
			h := strings.ToUpper(strconv.FormatUint(uint64(c), 16))
			if len(h) == 1 {
				b.WriteByte('0')
			}
			b.WriteString(h)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TLSHandshakeFailures counts the TLS handshakes that failed on the broker's AMQPS listeners.
func (s *Server) TLSHandshakeFailures() uint64 { return s.tlsHandshakeFailures.Load() }

// issuerDN is a certificate's issuer in the same form as certLoginName's DN.
func issuerDN(cert *x509.Certificate) string {
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(cert.RawIssuer, &rdns); err != nil {
		return ""
	}
	return formatDN(rdns)
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "tlsv1.2"
	case tls.VersionTLS13:
		return "tlsv1.3"
	}
	return tls.VersionName(v)
}
