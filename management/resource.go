package management

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/server"
)

// A resource is one API path with a handler per method, like RabbitMQ's cowboy_rest resources:
// an unsupported method is 405 (before authentication, with Allow), then the user is
// authenticated and authorised, then the handler runs.
type resource map[string]op

// level is the tag a request needs.
type level int

const (
	lvlManagement level = iota
	lvlMonitoring
	lvlAdmin
)

// op is one method of a resource.
type op struct {
	level level
	// vhost: the path names a vhost ({vhost}) that must exist (404) and that the user must have
	// access to (401); write: the operation changes the vhost, which needs a permission in it
	// whatever the user's tags.
	vhost, write bool
	// open: answered without credentials (RabbitMQ's /api/auth, which its login page reads).
	open bool
	fn   func(c *call) error
}

// call is one authenticated request.
type call struct {
	a    *api
	w    http.ResponseWriter
	r    *http.Request
	user server.UserInfo
	vars map[string]string // path variables, unescaped

	vhostsOnce bool
	vhosts     []string // the user's vhosts (those it has a permission in)
}

func (a *api) handle(r *mux.Router, path string, res resource) {
	r.Handle(path, &resourceHandler{a: a, res: res})
}

type resourceHandler struct {
	a   *api
	res resource
}

func (h *resourceHandler) allow() string {
	ms := []string{}
	for m := range h.res {
		ms = append(ms, m)
	}
	if _, ok := h.res[http.MethodGet]; ok {
		ms = append(ms, http.MethodHead)
	}
	ms = append(ms, http.MethodOptions)
	slices.Sort(ms)
	return strings.Join(ms, ", ")
}

func (h *resourceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Allow", h.allow())
		w.WriteHeader(http.StatusOK)
		return
	}
	o, ok := h.res[method]
	if !ok {
		w.Header().Set("Allow", h.allow())
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	c := &call{a: h.a, w: w, r: r, vars: map[string]string{}}
	for k, v := range mux.Vars(r) {
		u, err := url.PathUnescape(v)
		if err != nil {
			c.fail(badRequest("malformed path segment %q", v))
			return
		}
		c.vars[k] = u
	}
	if !o.open && (!c.authenticate() || !c.authorise(o)) {
		return
	}
	if err := o.fn(c); err != nil {
		c.fail(err)
	}
}

const realm = `Basic realm="RabbitMQ Management"`

// authenticate checks the basic-auth credentials; on failure it has answered 401.
func (c *call) authenticate() bool {
	name, pass, ok := c.r.BasicAuth()
	if !ok {
		c.w.Header().Set("WWW-Authenticate", realm)
		c.w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	u, err := c.a.b.Authenticate(name, pass, remoteAddr(c.r))
	if err != nil {
		c.w.Header().Set("WWW-Authenticate", realm)
		writeJSON(c.w, http.StatusUnauthorized, map[string]any{"error": "not_authorized", "reason": "Login failed"})
		return false
	}
	c.user = u
	if !c.isManagement() {
		c.notAuthorised("Not management user")
		return false
	}
	return true
}

func remoteAddr(r *http.Request) net.Addr {
	ap, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		return nil
	}
	return ap
}

func (c *call) isAdmin() bool   { return c.user.HasTag("administrator") }
func (c *call) isMonitor() bool { return c.isAdmin() || c.user.HasTag("monitoring") }
func (c *call) isManagement() bool {
	return c.isMonitor() || c.user.HasTag("management") || c.user.HasTag("policymaker")
}

// seesAll reports whether the user may list every vhost's objects.
func (c *call) seesAll() bool { return c.isMonitor() }

func (c *call) userVhosts() []string {
	if !c.vhostsOnce {
		c.vhosts, c.vhostsOnce = c.a.b.UserVhosts(c.user.Name), true
	}
	return c.vhosts
}

func (c *call) hasVhost(v string) bool { return slices.Contains(c.userVhosts(), v) }

// visible is the vhost filter for listings.
func (c *call) visible() func(string) bool {
	if c.seesAll() {
		return nil
	}
	vs := c.userVhosts()
	return func(v string) bool { return slices.Contains(vs, v) }
}

func (c *call) authorise(o op) bool {
	switch {
	case o.level == lvlAdmin && !c.isAdmin():
		c.notAuthorised("Not administrator user")
		return false
	case o.level == lvlMonitoring && !c.isMonitor():
		c.notAuthorised("Not monitor user")
		return false
	}
	if !o.vhost {
		return true
	}
	vh := c.vars["vhost"]
	if _, err := c.a.b.Vhost(vh); err != nil {
		writeNotFound(c.w)
		return false
	}
	if !c.isAdmin() && !c.hasVhost(vh) {
		c.notAuthorised("User not authorised to access virtual host")
		return false
	}
	if o.write && !c.hasVhost(vh) {
		c.notAuthorised("Access refused.")
		return false
	}
	return true
}

func (c *call) notAuthorised(reason string) {
	writeJSON(c.w, http.StatusUnauthorized, map[string]any{"error": "not_authorised", "reason": reason})
}

// --- responses ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":"internal_server_error","reason":"encoding the response"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

func (c *call) ok(v any) error {
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

// created answers 201 for a new object and 204 for an updated one, as RabbitMQ does.
func (c *call) created(isNew bool) error {
	if isNew {
		c.w.WriteHeader(http.StatusCreated)
	} else {
		c.w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func (c *call) noContent() error {
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{"error": "Object Not Found", "reason": "Not Found"})
}

// apiError is an error with the status and body RabbitMQ answers.
type apiError struct {
	status int
	kind   string // the body's "error"
	reason any    // the body's "reason": a string or an Erlang term rendered as JSON
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %v", e.status, e.kind, e.reason) }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, kind: "bad_request", reason: fmt.Sprintf(format, args...)}
}

func badRequestTerm(term ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, kind: "bad_request", reason: term}
}

// fail answers err: broker errors are mapped to RabbitMQ's statuses.
func (c *call) fail(err error) {
	var ae *apiError
	var bre *server.BadRequestError
	var amqpErr *amqp.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, server.ErrClusterUnavailable):
		ae = &apiError{status: http.StatusServiceUnavailable, kind: "service_unavailable", reason: err.Error()}
	case errors.Is(err, server.ErrVhostNotFound):
		ae = &apiError{status: http.StatusNotFound, kind: "not_found", reason: "vhost_not_found"}
	case errors.Is(err, server.ErrNotFound):
		writeNotFound(c.w)
		return
	case errors.As(err, &mbe):
		ae = &apiError{status: http.StatusRequestEntityTooLarge, kind: "bad_request", reason: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.As(err, &bre):
		ae = &apiError{status: http.StatusBadRequest, kind: "bad_request", reason: bre.Reason}
		if bre.Term != nil {
			ae.reason = bre.Term
		}
	case errors.As(err, &amqpErr):
		ae = amqpStatus(amqpErr)
	default:
		c.a.log.Error("management request failed", "method", c.r.Method, "path", c.r.URL.EscapedPath(), "err", err)
		ae = &apiError{status: http.StatusInternalServerError, kind: "internal_server_error", reason: err.Error()}
	}
	writeJSON(c.w, ae.status, map[string]any{"error": ae.kind, "reason": ae.reason})
}

// amqpStatus maps a broker error to what RabbitMQ's API answers for it.
func amqpStatus(e *amqp.Error) *apiError {
	text := strings.TrimPrefix(e.Text, amqp.CodeName(e.Code)+" - ") // RabbitMQ's API drops the code's name
	switch e.Code {
	case amqp.NotFound:
		return &apiError{status: http.StatusNotFound, kind: "not_found", reason: text}
	case amqp.AccessRefused:
		return &apiError{status: http.StatusUnauthorized, kind: "not_authorised", reason: "Access refused."}
	case amqp.InternalError:
		return &apiError{status: http.StatusInternalServerError, kind: "internal_server_error", reason: text}
	}
	return &apiError{status: http.StatusBadRequest, kind: "bad_request", reason: text}
}

// --- request bodies ---

// body reads the request's JSON object, limited to limit bytes. An empty body is an empty object.
// Numbers are kept as json.Number so that integers stay integers.
func (c *call) body(limit int64) (map[string]any, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, limit))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, badRequest("not_json")
	}
	if d.More() {
		return nil, badRequest("not_json")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("not_json")
	}
	return m, nil
}

// fields reads typed fields of a request body, collecting RabbitMQ's errors.
type fields map[string]any

// require fails with RabbitMQ's key_missing list for the keys m lacks.
func (m fields) require(keys ...string) error {
	var missing []string
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			missing = append(missing, "{key_missing,"+k+"}")
		}
	}
	if missing != nil {
		return badRequest("[%s]", strings.Join(missing, ","))
	}
	return nil
}

func (m fields) bool(key string, def bool) (bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		switch v {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, badRequestTerm("not_boolean", fmt.Sprint(v))
}

func (m fields) string(key, def string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", badRequestTerm("not_string", key)
	}
	return s, nil
}

func (m fields) int(key string, def int64) (int64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	var n json.Number
	switch v := v.(type) {
	case json.Number:
		n = v
	case string:
		n = json.Number(v)
	default:
		return 0, badRequestTerm("not_int", key)
	}
	i, err := n.Int64()
	if err != nil {
		return 0, badRequestTerm("not_int", key)
	}
	return i, nil
}

func (m fields) table(key string) (amqp.Table, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if a, isArr := v.([]any); isArr && len(a) == 0 {
			return nil, nil // Erlang's empty proplist, as RabbitMQ's own tools may send it
		}
		return nil, badRequest("%s must be an object", key)
	}
	return jsonToTable(obj)
}

// tags reads user or vhost tags: a comma-separated string or an array of strings.
func (m fields) tags(key string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	var out []string
	switch v := v.(type) {
	case string:
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, badRequestTerm("not_string", key)
			}
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	default:
		return nil, badRequestTerm("not_string", key)
	}
	return out, nil
}

// exchangeName maps the API's name for the default exchange.
func exchangeName(s string) string {
	if s == "amq.default" {
		return ""
	}
	return s
}

// --- listings: columns, sort and pagination query parameters, as RabbitMQ's API has them ---

// list answers a listing, applying ?sort=, ?sort_reverse=, ?name=/?use_regex= with ?pagination,
// ?page=, ?page_size= and ?columns=.
func (c *call) list(items []any) error {
	q := c.r.URL.Query()
	if key := q.Get("sort"); key != "" {
		path := strings.Split(key, ".")
		sort.SliceStable(items, func(i, j int) bool { return lessJSON(lookup(items[i], path), lookup(items[j], path)) })
	}
	if q.Get("sort_reverse") == "true" {
		slices.Reverse(items)
	}
	total := len(items)
	paged := q.Get("pagination") == "true" || q.Has("page")
	if name := q.Get("name"); name != "" && paged {
		match := func(s string) bool { return strings.Contains(s, name) }
		if q.Get("use_regex") == "true" {
			re, err := regexp.Compile(name)
			if err != nil {
				return badRequest("invalid regular expression %q", name)
			}
			match = re.MatchString
		}
		kept := items[:0:0]
		for _, it := range items {
			if s, _ := lookup(it, []string{"name"}).(string); match(s) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if cols := q.Get("columns"); cols != "" {
		var paths [][]string
		for _, col := range strings.Split(cols, ",") {
			if col = strings.TrimSpace(col); col != "" {
				paths = append(paths, strings.Split(col, "."))
			}
		}
		for i, it := range items {
			items[i] = project(it, paths)
		}
	}
	if !paged {
		return c.ok(items)
	}
	page, size := 1, 100
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(q.Get("page_size")); err == nil && v > 0 {
		size = min(v, 500)
	}
	filtered := len(items)
	pageCount := max((filtered+size-1)/size, 1)
	if page > pageCount {
		return badRequest("page out of range")
	}
	lo := min((page-1)*size, filtered)
	hi := min(lo+size, filtered)
	return c.ok(map[string]any{
		"filtered_count": filtered, "item_count": hi - lo, "items": items[lo:hi],
		"page": page, "page_count": pageCount, "page_size": size, "total_count": total,
	})
}

func lookup(v any, path []string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// project keeps only the given paths of an object.
func project(v any, paths [][]string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for _, p := range paths {
		x, ok := m[p[0]]
		if !ok {
			continue
		}
		if len(p) == 1 {
			out[p[0]] = x
			continue
		}
		sub, _ := out[p[0]].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
		}
		if pv, ok := project(x, [][]string{p[1:]}).(map[string]any); ok {
			for k, y := range pv {
				sub[k] = y
			}
		}
		out[p[0]] = sub
	}
	return out
}

// lessJSON orders JSON values: numbers numerically, strings lexically, missing values first.
func lessJSON(a, b any) bool {
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum && bNum {
		return fa < fb
	}
	if aNum != bNum {
		return !aNum
	}
	return fmt.Sprint(a) < fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint8:
		return float64(v), true
	case float64:
		return v, true
	case rate:
		return float64(v), true
	}
	return 0, false
}
