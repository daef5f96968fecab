package paypalgw

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

// certChain is a downloaded signing certificate with the intermediates served with it.
type certChain struct {
	leaf          *x509.Certificate
	intermediates *x509.CertPool
	expires       time.Time // the earliest NotAfter of the chain, capped by the cache TTL
}

type certCall struct {
	done     chan struct{}
	chain    *certChain
	err      error
	canceled bool // the fetching delivery's context ended; waiters try again themselves
}

// certFailure is a download or parse that failed, answered from the cache until until.
type certFailure struct {
	err   error
	until time.Time
}

// certCacheLimits bounds the cache; zero fields take the Config defaults.
type certCacheLimits struct {
	size        int
	ttl         time.Duration
	failureTTL  time.Duration
	concurrency int
}

// maxCertFailures bounds the failure cache; past it the oldest failure is forgotten.
const maxCertFailures = 256

// certCache downloads certificates by URL, at most once at a time per URL and at most
// limits.concurrency at once over all URLs, each in the context of the delivery that asked
// (bounded by DefaultHTTPTimeout). It keeps up to limits.size chains until they expire (by
// the injected clock) or the TTL passes, and remembers failures for limits.failureTTL so a
// URL that does not serve a usable certificate is not fetched again for every delivery.
type certCache struct {
	client     *http.Client
	allow      map[string]bool
	max        int
	ttl        time.Duration
	failureTTL time.Duration
	slots      chan struct{}
	now        func() time.Time

	mu           sync.Mutex
	entries      map[string]*certChain
	order        []string // insertion order, oldest first
	failures     map[string]certFailure
	failureOrder []string
	inflight     map[string]*certCall
}

func newCertCache(client *http.Client, allow map[string]bool, limits certCacheLimits, now func() time.Time) *certCache {
	if limits.size <= 0 {
		limits.size = DefaultCertCacheSize
	}
	if limits.ttl <= 0 {
		limits.ttl = DefaultCertCacheTTL
	}
	if limits.failureTTL <= 0 {
		limits.failureTTL = DefaultCertFailureTTL
	}
	if limits.concurrency <= 0 {
		limits.concurrency = DefaultCertFetchConcurrency
	}
	c := &certCache{allow: allow, max: limits.size, ttl: limits.ttl, failureTTL: limits.failureTTL, now: now,
		slots: make(chan struct{}, limits.concurrency), entries: map[string]*certChain{},
		failures: map[string]certFailure{}, inflight: map[string]*certCall{}}
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
	for {
		c.mu.Lock()
		now := c.now()
		if e, ok := c.entries[rawURL]; ok {
			if now.Before(e.expires) {
				c.mu.Unlock()
				return e, nil
			}
			c.removeLocked(rawURL)
		}
		if f, ok := c.failures[rawURL]; ok {
			if now.Before(f.until) {
				c.mu.Unlock()
				return nil, f.err
			}
			c.removeFailureLocked(rawURL)
		}
		call, ok := c.inflight[rawURL]
		if !ok {
			call = &certCall{done: make(chan struct{})}
			c.inflight[rawURL] = call
			c.mu.Unlock()
			c.run(ctx, rawURL, call)
			return call.chain, call.err
		}
		c.mu.Unlock()
		select {
		case <-call.done:
			if call.canceled && ctx.Err() == nil {
				continue // the delivery that fetched went away; fetch in this one's context
			}
			return call.chain, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// run fetches rawURL in ctx, within a global slot, and records the outcome. A failure is
// remembered unless it came from ctx ending (that is the delivery's, not the URL's).
func (c *certCache) run(ctx context.Context, rawURL string, call *certCall) {
	var chain *certChain
	var err error
	select {
	case c.slots <- struct{}{}:
		fctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
		chain, err = c.fetch(fctx, rawURL)
		cancel()
		<-c.slots
	case <-ctx.Done():
		err = ctx.Err()
	}
	canceled := err != nil && ctx.Err() != nil
	c.mu.Lock()
	delete(c.inflight, rawURL)
	switch {
	case err == nil:
		c.addLocked(rawURL, chain)
	case !canceled:
		c.addFailureLocked(rawURL, err)
	}
	c.mu.Unlock()
	call.chain, call.err, call.canceled = chain, err, canceled
	close(call.done)
}

func (c *certCache) addFailureLocked(rawURL string, err error) {
	for len(c.failures) >= maxCertFailures {
		c.removeFailureLocked(c.failureOrder[0])
	}
	c.failures[rawURL] = certFailure{err: err, until: c.now().Add(c.failureTTL)}
	c.failureOrder = append(c.failureOrder, rawURL)
}

func (c *certCache) removeFailureLocked(rawURL string) {
	delete(c.failures, rawURL)
	c.failureOrder = without(c.failureOrder, rawURL)
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
	c.order = without(c.order, rawURL)
}

// without removes the first rawURL from order, the URLs of a cache oldest first.
func without(order []string, rawURL string) []string {
	if i := slices.Index(order, rawURL); i >= 0 {
		return slices.Delete(order, i, i+1)
	}
	return order
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
		return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "fetch certificate", Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if gateways.RetryableStatus(resp.StatusCode) {
			return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "fetch certificate", StatusCode: resp.StatusCode, Retryable: true}
		}
		return nil, sigErr(ErrCertificate, "certificate URL answered HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCertBytes+1))
	if err != nil {
		return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "fetch certificate", StatusCode: resp.StatusCode, Retryable: true, Err: err}
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
