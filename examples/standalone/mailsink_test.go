package main

import (
	"io"
	"log"
	"net"
	"net/mail"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// mailSink is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that accepts every
// message, holds each DATA reply for delay (as a server scanning mail does, so a sweep
// takes long enough to be killed mid-way) and records the X-Renewkit-Key and
// X-Renewkit-Kind headers of every message it accepted, in order.
type mailSink struct {
	Port  int
	delay time.Duration
	srv   *gosmtp.Server

	mu      sync.Mutex
	msgs    []sunkMessage
	keys    map[string]int // accepted messages per key, of the watched kind
	waiters []sinkWaiter
	watch   string // the kind whose keys are counted
}

type sunkMessage struct {
	Key, Kind string
	At        time.Time // when the server accepted it
}

type sinkWaiter struct {
	distinct int
	ch       chan struct{}
}

// startMailSink starts the server; it is closed at cleanup. Only messages of kind watch
// count towards distinct keys (operator alerts may arrive too).
func startMailSink(t *testing.T, delay time.Duration, watch string) *mailSink {
	t.Helper()
	m := &mailSink{delay: delay, keys: map[string]int{}, watch: watch}
	m.srv = gosmtp.NewServer(m)
	m.srv.Domain = "localhost"
	m.srv.AllowInsecureAuth = true
	m.srv.MaxMessageBytes = 1 << 20
	m.srv.ReadTimeout = 30 * time.Second
	m.srv.WriteTimeout = 30 * time.Second
	m.srv.ErrorLog = log.New(io.Discard, "", 0) // killed clients reset their connections
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = m.srv.Serve(l) }()
	t.Cleanup(func() { _ = m.srv.Close() })
	return m
}

// NewSession implements gosmtp.Backend.
func (m *mailSink) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return sinkSession{m}, nil }

// await returns a channel closed once at least n distinct keys of the watched kind were
// accepted.
func (m *mailSink) await(n int) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan struct{})
	if len(m.keys) >= n {
		close(ch)
		return ch
	}
	m.waiters = append(m.waiters, sinkWaiter{distinct: n, ch: ch})
	return ch
}

func (m *mailSink) record(msg sunkMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	if msg.Kind != m.watch {
		return
	}
	m.keys[msg.Key]++
	kept := m.waiters[:0]
	for _, w := range m.waiters {
		if len(m.keys) >= w.distinct {
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	m.waiters = kept
}

// counts returns the accepted messages of the watched kind, their distinct keys, and the
// accepted messages of any other kind.
func (m *mailSink) counts() (total, distinct, other int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.msgs {
		if msg.Kind == m.watch {
			total++
		} else {
			other++
		}
	}
	return total, len(m.keys), other
}

// since returns how many messages of the watched kind were accepted after t, and when
// the first and the last of them were.
func (m *mailSink) since(t time.Time) (n int, first, last time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.msgs {
		if msg.Kind != m.watch || !msg.At.After(t) {
			continue
		}
		if n == 0 {
			first = msg.At
		}
		n++
		last = msg.At
	}
	return n, first, last
}

// perKey returns a copy of the accepted messages per key of the watched kind.
func (m *mailSink) perKey() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.keys))
	for k, n := range m.keys {
		out[k] = n
	}
	return out
}

type sinkSession struct{ m *mailSink }

func (sinkSession) Reset()                                 {}
func (sinkSession) Logout() error                          { return nil }
func (sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }

// Data reads the message, waits the reply delay, then records it as accepted: like a real
// server, the message counts as delivered once the server commits to its 250 reply,
// whether or not the client lives to read it.
func (s sinkSession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, msg.Body); err != nil {
		return err
	}
	time.Sleep(s.m.delay)
	s.m.record(sunkMessage{Key: msg.Header.Get("X-Renewkit-Key"), Kind: msg.Header.Get("X-Renewkit-Kind"), At: time.Now()})
	return nil
}
