package smtpnotify

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// received is one message the test server accepted.
type received struct {
	From string
	To   []string
	Data []byte
}

// testServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1 with hooks for
// failure drills.
type testServer struct {
	Addr string
	Host string
	Port int

	srv      *gosmtp.Server
	implicit *tls.Config

	mu   sync.Mutex
	msgs []received

	// Hooks; nil means accept. They run on the server's goroutines.
	OnMail func(from string) error
	OnRcpt func(to string) error
	// OnData may consume r partially, close c's connection, block, ... When it returns
	// handled=true its error is the answer and the message is not stored.
	OnData func(c *gosmtp.Conn, r io.Reader) (handled bool, err error)

	// DataDelay holds each DATA reply this long after the message has arrived, as a
	// server scanning mail before accepting it does.
	DataDelay time.Duration
	// Discard counts accepted messages without keeping them (for benchmarks).
	Discard bool

	// Auth: when User is set the server offers AUTH PLAIN and requires it.
	User, Password string

	Sessions  atomic.Int64 // sessions opened
	Logouts   atomic.Int64 // sessions ended
	MailCalls atomic.Int64
	RcptCalls atomic.Int64
	DataCalls atomic.Int64
	Accepted  atomic.Int64 // messages accepted
	authOK    atomic.Int64

	inData, peakData atomic.Int64 // DATA commands being answered now, and at most
}

// PeakConcurrentData is the largest number of DATA replies the server was preparing at
// once: how many transactions really ran in parallel.
func (s *testServer) PeakConcurrentData() int64 { return s.peakData.Load() }

type serverOption func(*testServer)

func withTLS(cfg *tls.Config) serverOption {
	return func(s *testServer) { s.srv.TLSConfig = cfg }
}

// withImplicitTLS makes the listener speak TLS from the first byte (SMTPS).
func withImplicitTLS(cfg *tls.Config) serverOption {
	return func(s *testServer) { s.implicit = cfg }
}

// withDataDelay sets DataDelay before the server starts.
func withDataDelay(d time.Duration) serverOption {
	return func(s *testServer) { s.DataDelay = d }
}

// withDiscard sets Discard before the server starts.
func withDiscard() serverOption {
	return func(s *testServer) { s.Discard = true }
}

func withAuth(user, pass string) serverOption {
	return func(s *testServer) { s.User, s.Password = user, pass }
}

func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	s := &testServer{}
	s.srv = gosmtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.MaxRecipients = 10
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.EnableSMTPUTF8 = true
	for _, o := range opts {
		o(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.implicit != nil {
		l = tls.NewListener(l, s.implicit)
	}
	s.Addr = l.Addr().String()
	s.Host = "127.0.0.1"
	s.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

func (s *testServer) Messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *testServer) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
	s.Accepted.Store(0)
}

// NewSession implements gosmtp.Backend.
func (s *testServer) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	s.Sessions.Add(1)
	return &session{s: s, c: c}, nil
}

type session struct {
	s      *testServer
	c      *gosmtp.Conn
	authed bool
	from   string
	to     []string
}

var _ gosmtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.User || pass != ss.s.Password {
			return errors.New("invalid credentials")
		}
		ss.authed = true
		ss.s.authOK.Add(1)
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	ss.s.MailCalls.Add(1)
	if ss.s.User != "" && !ss.authed {
		return gosmtp.ErrAuthRequired
	}
	if ss.s.OnMail != nil {
		if err := ss.s.OnMail(from); err != nil {
			return err
		}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.s.RcptCalls.Add(1)
	if ss.s.OnRcpt != nil {
		if err := ss.s.OnRcpt(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.s.DataCalls.Add(1)
	if ss.s.OnData != nil {
		if handled, err := ss.s.OnData(ss.c, r); handled {
			return err
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	cur := ss.s.inData.Add(1)
	for peak := ss.s.peakData.Load(); cur > peak && !ss.s.peakData.CompareAndSwap(peak, cur); peak = ss.s.peakData.Load() {
	}
	if ss.s.DataDelay > 0 {
		time.Sleep(ss.s.DataDelay)
	}
	ss.s.inData.Add(-1)
	ss.s.Accepted.Add(1)
	if ss.s.Discard {
		return nil
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, received{From: ss.from, To: append([]string(nil), ss.to...), Data: bytes.Clone(b)})
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error {
	ss.s.Logouts.Add(1)
	return nil
}
