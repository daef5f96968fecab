package mercadopagogw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/config"
	"github.com/mercadopago/sdk-go/pkg/mperror"
	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preapproval"
)

// api reads payments and preapprovals through sdk-go.
type api struct {
	payments     payment.Client
	preapprovals preapproval.Client
	timeout      time.Duration
}

func newAPI(cfg Config) (*api, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL: %v", ErrInvalidConfig, err)
	}
	var doer doer = cfg.HTTPClient
	if strings.TrimRight(cfg.BaseURL, "/") != DefaultBaseURL {
		doer = &rebase{base: base, next: cfg.HTTPClient}
	}
	mp, err := config.New(cfg.AccessToken, config.WithHTTPClient(doer))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return &api{payments: payment.NewClient(mp), preapprovals: preapproval.NewClient(mp), timeout: cfg.Timeout}, nil
}

// rebase sends sdk-go's requests (always to api.mercadopago.com) to base instead.
type rebase struct {
	base *url.URL
	next doer
}

// doer is sdk-go's requester interface; *http.Client is one.
type doer interface {
	Do(req *http.Request) (*http.Response, error)
}

func (r *rebase) Do(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = r.base.Scheme, r.base.Host
	u.Path = strings.TrimRight(r.base.Path, "/") + req.URL.Path
	u.RawPath = ""
	out.URL, out.Host = &u, r.base.Host
	return r.next.Do(out)
}

func (a *api) getPayment(ctx context.Context, id string) (*payment.Response, error) {
	n, err := strconv.Atoi(id)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("%w: payment id %q is not a positive integer", ErrMalformedNotification, truncate(id))
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	p, err := a.payments.Get(ctx, n)
	if err != nil {
		return nil, apiError("get payment", id, err)
	}
	if p == nil || p.ID == 0 {
		return nil, apiErr("get payment", id, http.StatusNotFound, nil)
	}
	return p, nil
}

func (a *api) getPreapproval(ctx context.Context, id string) (*preapproval.Response, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: preapproval id %q is malformed", ErrMalformedNotification, truncate(id))
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	p, err := a.preapprovals.Get(ctx, id)
	if err != nil {
		return nil, apiError("get preapproval", id, err)
	}
	if p == nil || p.ID == "" {
		return nil, apiErr("get preapproval", id, http.StatusNotFound, nil)
	}
	return p, nil
}

// apiError turns an sdk-go error into an *APIError. The response body is not kept: it may
// hold payer data.
func apiError(op, id string, err error) error {
	var re *mperror.ResponseError
	if errors.As(err, &re) {
		return apiErr(op, id, re.StatusCode, nil)
	}
	// Transport errors, timeouts, undecodable answers: a later attempt may succeed.
	return apiErr(op, id, 0, err)
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
