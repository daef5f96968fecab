package paypalgw

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// certChain is a downloaded signing certificate with the intermediates served with it.
type certChain struct {
	leaf          *x509.Certificate
	intermediates *x509.CertPool
	expires       time.Time // the earliest NotAfter of the chain, capped by the cache TTL
}

type certCall struct {
	done  chan struct{}
	chain *certChain
	err   error
}

// certCache downloads certificates by URL, at most once at a time per URL, and keeps up to
// max of them until they expire (by the injected clock) or the TTL passes.
type certCache struct {
	client *http.Client
	allow  map[string]bool
	max    int
	ttl    time.Duration
	now    func() time.Time

	mu       sync.Mutex
	entries  map[string]*certChain
	order    []string // insertion order, oldest first
	inflight map[string]*certCall
}

func newCertCache(client *http.Client, allow map[string]bool, max int, ttl time.Duration, now func() time.Time) *certCache {
	if max <= 0 {
		max = DefaultCertCacheSize
	}
	if ttl <= 0 {
		ttl = DefaultCertCacheTTL
	}
	c := &certCache{allow: allow, max: max, ttl: ttl, now: now,
		entries: map[string]*certChain{}, inflight: map[string]*certCall{}}
	// A redirect must stay on an allowlisted https host too.
	cl := *client
	prev := client.CheckRedirect
	cl.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkCertURL(req.URL, allow); err != nil {
			return err
		}
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	c.client = &cl
	return c
}

// get returns the chain at rawURL, which the caller has checked against the allowlist.
func (c *certCache) get(ctx context.Context, rawURL string) (*certChain, error) {
	c.mu.Lock()
	if e, ok := c.entries[rawURL]; ok {
		if c.now().Before(e.expires) {
			c.mu.Unlock()
			return e, nil
		}
		c.removeLocked(rawURL)
	}
	call, ok := c.inflight[rawURL]
	if !ok {
		call = &certCall{done: make(chan struct{})}
		c.inflight[rawURL] = call
		go c.run(context.WithoutCancel(ctx), rawURL, call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.chain, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *certCache) run(ctx context.Context, rawURL string, call *certCall) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	chain, err := c.fetch(ctx, rawURL)
	c.mu.Lock()
	delete(c.inflight, rawURL)
	if err == nil {
		c.addLocked(rawURL, chain)
	}
	c.mu.Unlock()
	call.chain, call.err = chain, err
	close(call.done)
}

func (c *certCache) addLocked(rawURL string, chain *certChain) {
	now := c.now()
	if !now.Before(chain.expires) {
		return // already expired: verification rejects it, nothing to keep
	}
	for len(c.entries) >= c.max {
		victim := c.order[0]
		for _, u := range c.order {
			if !now.Before(c.entries[u].expires) {
				victim = u
				break
			}
		}
		c.removeLocked(victim)
	}
	c.entries[rawURL] = chain
	c.order = append(c.order, rawURL)
}

func (c *certCache) removeLocked(rawURL string) {
	delete(c.entries, rawURL)
	for i, u := range c.order {
		if u == rawURL {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// fetch downloads and parses the PEM chain. A 4xx answer or an unreadable certificate is a
// verification failure (400); no answer or a 5xx is an APIError the gateway retries.
func (c *certCache) fetch(ctx context.Context, rawURL string) (*certChain, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, sigErr(ErrCertURL, "%v", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrSignature) { // a redirect off the allowlist
			return nil, err
		}
		return nil, &APIError{Op: "fetch certificate", Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if retryableStatus(resp.StatusCode) {
			return nil, &APIError{Op: "fetch certificate", StatusCode: resp.StatusCode, Retryable: true}
		}
		return nil, sigErr(ErrCertificate, "certificate URL answered HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCertBytes+1))
	if err != nil {
		return nil, &APIError{Op: "fetch certificate", StatusCode: resp.StatusCode, Retryable: true, Err: err}
	}
	if len(data) > maxCertBytes {
		return nil, sigErr(ErrCertificate, "certificate larger than %d bytes", maxCertBytes)
	}
	return parseChain(data, c.now().Add(c.ttl))
}

// parseChain reads PEM CERTIFICATE blocks: the first is the signing certificate, the rest
// intermediates.
func parseChain(data []byte, maxExpiry time.Time) (*certChain, error) {
	chain := &certChain{intermediates: x509.NewCertPool(), expires: maxExpiry}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, sigErr(ErrCertificate, "parsing certificate: %v", err)
		}
		if chain.leaf == nil {
			chain.leaf = cert
		} else {
			chain.intermediates.AddCert(cert)
		}
		if cert.NotAfter.Before(chain.expires) {
			chain.expires = cert.NotAfter
		}
	}
	if chain.leaf == nil {
		return nil, sigErr(ErrCertificate, "no PEM certificate at the URL")
	}
	return chain, nil
}
