package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/svinit/svinit/internal/license"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/svinit/svinit/internal/tmpl"
)

// templateData is what the request templates see.
type templateData struct {
	URL, Key, Instance, ID string
}

type compiledRequest struct {
	method, url, body *tmpl.Template
	header            map[string]*tmpl.Template
}

type genericHTTP struct {
	http                       httpCaller
	data                       templateData
	cfg                        license.HTTPConfig
	activate, beat, deactivate *compiledRequest // beat nil: repeat activate
	noSeats                    *regexp.Regexp
}

func templateFuncs() tmpl.FuncMap {
	return tmpl.FuncMap{
		"query": url.QueryEscape,
		"path":  url.PathEscape,
		"json":  func(s string) string { return license.JSONString(s, false) },
	}
}

func newGenericHTTP(cfg license.HTTPConfig, base, key string, caller httpCaller) (*genericHTTP, error) {
	var errs *multierror.Error
	g := &genericHTTP{http: caller, cfg: cfg, data: templateData{URL: base, Key: key}}
	var err error
	if g.activate, err = compileRequest("activate", cfg.Activate); err != nil {
		errs = multierror.Append(errs, err)
	}
	if !cfg.Heartbeat.Empty() {
		if g.beat, err = compileRequest("heartbeat", cfg.Heartbeat); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	if g.deactivate, err = compileRequest("deactivate", cfg.Deactivate); err != nil {
		errs = multierror.Append(errs, err)
	}
	for _, s := range append(slices.Clone(cfg.SuccessStatus), cfg.NoSeatsStatus...) {
		if s < 100 || s > 599 {
			errs = multierror.Append(errs, fmt.Errorf("license http: status %d out of range 100-599", s))
		}
	}
	if cfg.FileField == "." && (cfg.IDField != "" || cfg.TTLField != "" || cfg.ExpiresField != "") {
		errs = multierror.Append(errs, errors.New("license http: a response that is the license file (file field \".\") has no JSON id, TTL or expiry fields"))
	}
	if cfg.NoSeatsMatch != "" {
		if g.noSeats, err = regexp.Compile(cfg.NoSeatsMatch); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("license http: no-seats pattern: %w", err))
		}
	}
	return g, errs.ErrorOrNil()
}

func compileRequest(what string, r license.HTTPRequest) (*compiledRequest, error) {
	if r.URL == "" {
		return nil, fmt.Errorf("license http: the %s request needs a URL template, e.g. {{.URL}}/%s?key={{query .Key}}", what, what)
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
		if r.Body != "" {
			method = http.MethodPost
		}
	}
	var errs *multierror.Error
	parse := func(field, text string) *tmpl.Template {
		t, err := tmpl.Parse(what+" "+field, text, templateFuncs())
		if err == nil {
			// Run it once on sample data so that a field that does not exist ({{.Token}})
			// is reported now rather than on the first activation.
			err = t.Execute(io.Discard, templateData{URL: "https://example.com", Key: "k", Instance: "i", ID: "a"})
		}
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("license http: %s %s template: %w; it may use {{.URL}}, {{.Key}}, {{.Instance}}, {{.ID}}", what, field, err))
		}
		return t
	}
	c := &compiledRequest{method: parse("method", method), url: parse("url", r.URL), body: parse("body", r.Body), header: map[string]*tmpl.Template{}}
	for name, v := range r.Header {
		c.header[name] = parse("header "+name, v)
	}
	return c, errs.ErrorOrNil()
}

func render(t *tmpl.Template, d templateData) (string, error) {
	var b strings.Builder
	err := t.Execute(&b, d)
	return b.String(), err
}

// send renders and sends one request.
func (g *genericHTTP) send(ctx context.Context, c *compiledRequest, d templateData) (int, []byte, string, error) {
	method, err1 := render(c.method, d)
	u, err2 := render(c.url, d)
	body, err3 := render(c.body, d)
	header := http.Header{}
	var errs []error
	for name, t := range c.header {
		v, err := render(t, d)
		errs = append(errs, err)
		header.Set(name, v)
	}
	if err := errors.Join(append(errs, err1, err2, err3)...); err != nil {
		return 0, nil, "", fmt.Errorf("%w: render the request: %s", license.ErrPermanent, g.http.redact.Redact(err.Error()))
	}
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	status, resp, err := g.http.do(ctx, method, u, header, b)
	return status, resp, method + " " + g.http.show(u), err
}

func (g *genericHTTP) success(status int) bool {
	if len(g.cfg.SuccessStatus) == 0 {
		return status >= 200 && status < 300
	}
	return slices.Contains(g.cfg.SuccessStatus, status)
}

func (g *genericHTTP) Activate(ctx context.Context, instance string) (license.Lease, error) {
	d := g.data
	d.Instance = instance
	l, err := g.lease(ctx, "activate", g.activate, d, license.Lease{ID: instance})
	if err != nil {
		return license.Lease{}, fmt.Errorf("http activate %s: %w", instance, err)
	}
	return l, nil
}

func (g *genericHTTP) Heartbeat(ctx context.Context, instance string, old license.Lease) (license.Lease, error) {
	c := g.beat
	if c == nil {
		c = g.activate
	}
	d := g.data
	d.Instance, d.ID = instance, old.ID
	l, err := g.lease(ctx, "heartbeat", c, d, old)
	if err != nil {
		return license.Lease{}, fmt.Errorf("http heartbeat %s: %w", instance, err)
	}
	return l, nil
}

func (g *genericHTTP) Deactivate(ctx context.Context, instance string, l license.Lease) error {
	d := g.data
	d.Instance, d.ID = instance, l.ID
	status, body, shown, err := g.send(ctx, g.deactivate, d)
	if err != nil {
		return fmt.Errorf("http deactivate %s: %w", instance, err)
	}
	if err := g.check("deactivate", status, body, shown); err != nil {
		return fmt.Errorf("http deactivate %s: %w", instance, err)
	}
	return nil
}

// lease sends an activation or heartbeat and reads the lease out of the response, starting
// from prev for the fields the response does not carry.
func (g *genericHTTP) lease(ctx context.Context, what string, c *compiledRequest, d templateData, prev license.Lease) (license.Lease, error) {
	status, body, shown, err := g.send(ctx, c, d)
	if err != nil {
		return license.Lease{}, err
	}
	if err := g.check(what, status, body, shown); err != nil {
		return license.Lease{}, err
	}
	l := prev
	if g.cfg.FileField == "." {
		l.File = body
	}
	var doc any
	if g.cfg.IDField == "" && g.cfg.TTLField == "" && g.cfg.ExpiresField == "" && (g.cfg.FileField == "" || g.cfg.FileField == ".") {
		return l, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return license.Lease{}, fmt.Errorf("%w: %s: status %d with a body that is not JSON", license.ErrPermanent, shown, status)
	}
	field := func(name string) (string, bool, error) {
		if name == "" {
			return "", false, nil
		}
		v, ok := jsonField(doc, name)
		if !ok {
			return "", false, nil
		}
		switch v := v.(type) {
		case string:
			return v, true, nil
		case json.Number:
			return v.String(), true, nil
		default:
			return "", false, fmt.Errorf("%w: %s: field %s is not a string or a number", license.ErrPermanent, shown, name)
		}
	}
	if id, ok, err := field(g.cfg.IDField); err != nil {
		return license.Lease{}, err
	} else if ok && id != "" {
		l.ID = id
	} else if g.cfg.IDField != "" && what == "activate" {
		return license.Lease{}, fmt.Errorf("%w: %s: the response has no activation id field %s", license.ErrPermanent, shown, g.cfg.IDField)
	}
	if s, ok, err := field(g.cfg.TTLField); err != nil {
		return license.Lease{}, err
	} else if ok {
		if l.TTL, err = license.ParseTTL(s); err != nil {
			return license.Lease{}, fmt.Errorf("%w: %s: field %s: %v", license.ErrPermanent, shown, g.cfg.TTLField, err)
		}
	}
	if s, ok, err := field(g.cfg.ExpiresField); err != nil {
		return license.Lease{}, err
	} else if ok && s != "" {
		if l.Expires, err = license.ParseExpires(s); err != nil {
			return license.Lease{}, fmt.Errorf("%w: %s: field %s: %v", license.ErrPermanent, shown, g.cfg.ExpiresField, err)
		}
	}
	if g.cfg.FileField != "." {
		if s, ok, err := field(g.cfg.FileField); err != nil {
			return license.Lease{}, err
		} else if ok {
			l.File = []byte(s)
		}
	}
	return l, nil
}

// check classifies a response.
func (g *genericHTTP) check(what string, status int, body []byte, shown string) error {
	if g.success(status) {
		msg := ""
		if g.cfg.ErrorField != "" {
			var doc any
			if json.Unmarshal(body, &doc) == nil {
				if v, ok := jsonField(doc, g.cfg.ErrorField); ok && v != nil && v != "" && v != false {
					b, _ := json.Marshal(v)
					msg = strings.Trim(string(b), `"`)
				}
			}
		}
		if msg == "" {
			return nil
		}
		msg = g.http.redact.Redact(msg)
		class := license.ErrPermanent
		if what == "activate" && g.noSeats != nil && g.noSeats.MatchString(msg) {
			class = license.ErrNoSeats
		}
		return fmt.Errorf("%w: %s: server said %q", class, shown, msg)
	}
	text := g.http.redact.Excerpt(body)
	class := statusClass(status)
	switch {
	case what == "activate" && (slices.Contains(g.cfg.NoSeatsStatus, status) || (g.noSeats != nil && g.noSeats.MatchString(text))):
		class = license.ErrNoSeats
	case what != "activate" && (status == http.StatusNotFound || status == http.StatusGone):
		class = license.ErrNotFound
	}
	return fmt.Errorf("%w: %s: status %d: %s", class, shown, status, text)
}

// jsonField follows a dotted path through JSON objects.
func jsonField(doc any, path string) (any, bool) {
	v := doc
	for _, name := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}
