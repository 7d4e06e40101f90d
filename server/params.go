package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Runtime parameters, as RabbitMQ's rabbit_runtime_parameters: per-vhost values named by
// (component, vhost, name), whose meaning belongs to the component that registered the name
// (shovel, federation-upstream, ...). A value is any JSON value, kept as the JSON it was given
// (numbers as json.Number); it is durable ('R' records, storage/keys_admin.go), exported in
// definitions, and dropped with its vhost.
//
// Components register once (RegisterParameterComponent) with a validator and set/clear hooks:
// the broker validates a value before storing it, then calls Set; on removal (and when the vhost
// goes) it calls Clear. Registering a component replays the stored values of that component to
// its Set, which is how a persisted shovel starts at broker start. A stored value whose component
// is not registered (a plugin not built in) is kept and listed, but a PUT naming an unregistered
// component is refused with RabbitMQ's "component ... not found".
//
// The component vhost-limits is the vhost limits (admin_limits.go) seen as a parameter, as
// RabbitMQ stores them: it is listed here and may be set here, but it keeps its own records.
//
// Locking: paramState.change serializes changes and the hooks they call (taken before any other
// broker lock, and never held by a hook's caller inside the broker); paramState.mu, a leaf, guards
// the maps. Hooks run under change with no other broker lock held, so they may call back into
// the broker's API but must not change parameters themselves.

// ParameterVhostLimits is the component name under which vhost limits appear.
const ParameterVhostLimits = "vhost-limits"

// Parameter is one runtime parameter. Value is decoded JSON: map[string]any, []any, string,
// json.Number, bool or nil.
type Parameter struct {
	Component, Vhost, Name string
	Value                  any
	// User is the user setting it (PutParameter's caller: the management API's user), for
	// ParameterComponent.ValidateAs; not stored. "" (definitions import, internal callers): none.
	User string
}

// ParameterComponent is what a component registers: Validate checks a value before it is stored
// (its error is the PUT's answer: a *BadRequestError with RabbitMQ's "Validation failed" text);
// Set is called once a value is stored (or replayed at registration), Clear once it is removed.
// Set and Clear may be nil.
type ParameterComponent struct {
	Validate func(vhost, name string, value any) error
	// ValidateAs, if set, is used instead of Validate, with the user setting the value (""
	// when there is none): RabbitMQ checks some values against the acting user's access.
	ValidateAs func(user, vhost, name string, value any) error
	Set        func(p Parameter)
	Clear      func(vhost, name string)
}

type paramState struct {
	change sync.Mutex // serializes changes and the hooks (taken first, alone)

	mu struct {
		sync.Mutex // leaf
		components map[string]ParameterComponent
		values     map[paramKey]Parameter
	}
}

type paramKey struct{ component, vhost, name string }

// RegisterParameterComponent registers the component name (replacing an earlier registration)
// and calls its Set for each stored value of that component.
func (s *Server) RegisterParameterComponent(name string, c ParameterComponent) {
	s.params.change.Lock()
	defer s.params.change.Unlock()
	s.params.mu.Lock()
	if s.params.mu.components == nil {
		s.params.mu.components = map[string]ParameterComponent{}
	}
	s.params.mu.components[name] = c
	var replay []Parameter
	for k, p := range s.params.mu.values {
		if k.component == name {
			replay = append(replay, p)
		}
	}
	s.params.mu.Unlock()
	sortParameters(replay)
	if c.Set == nil {
		return
	}
	for _, p := range replay {
		c.Set(p)
	}
}

func sortParameters(ps []Parameter) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Vhost != b.Vhost {
			return a.Vhost < b.Vhost
		}
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		return a.Name < b.Name
	})
}

// Parameters returns every runtime parameter (vhost limits included), by vhost, component and
// name.
func (s *Server) Parameters() []Parameter {
	s.params.mu.Lock()
	out := make([]Parameter, 0, len(s.params.mu.values))
	for _, p := range s.params.mu.values {
		out = append(out, p)
	}
	s.params.mu.Unlock()
	for _, l := range s.AllVhostLimits() {
		out = append(out, limitsParameter(l))
	}
	sortParameters(out)
	return out
}

func limitsParameter(l VhostLimits) Parameter {
	v := make(map[string]any, len(l.Limits))
	for k, n := range l.Limits {
		v[k] = json.Number(fmt.Sprint(n))
	}
	return Parameter{Component: ParameterVhostLimits, Vhost: l.Vhost, Name: "limits", Value: v}
}

// Parameter returns one runtime parameter (ErrNotFound: none).
func (s *Server) Parameter(component, vhost, name string) (Parameter, error) {
	if component == ParameterVhostLimits {
		for _, l := range s.AllVhostLimits() {
			if l.Vhost == vhost && name == "limits" {
				return limitsParameter(l), nil
			}
		}
		return Parameter{}, ErrNotFound
	}
	s.params.mu.Lock()
	defer s.params.mu.Unlock()
	p, ok := s.params.mu.values[paramKey{component, vhost, name}]
	if !ok {
		return Parameter{}, ErrNotFound
	}
	return p, nil
}

// ErrVhostNotFound is a change naming a vhost that does not exist, where RabbitMQ answers
// {"error":"not_found","reason":"vhost_not_found"}.
var ErrVhostNotFound = fmt.Errorf("warren: vhost_not_found: %w", ErrNotFound)

// putParameterDirect validates and stores a parameter, calls its component's Set, and reports whether
// it was created.
func (s *Server) putParameterDirect(p Parameter) (created bool, err error) {
	if s.vhost(p.Vhost) == nil {
		return false, ErrVhostNotFound
	}
	if p.Component == ParameterVhostLimits {
		return s.putLimitsParameter(p)
	}
	s.params.change.Lock()
	defer s.params.change.Unlock()
	s.params.mu.Lock()
	c, ok := s.params.mu.components[p.Component]
	s.params.mu.Unlock()
	if !ok {
		return false, badRequest("Validation failed\n\ncomponent %s not found\n", p.Component)
	}
	// The value as it reads back from its record (numbers as json.Number, whatever the caller
	// passed), so that the validator and the hooks see what recovery will give them.
	raw, err := json.Marshal(p.Value)
	if err != nil {
		return false, badRequest("Validation failed\n\n%v\n", err)
	}
	if p.Value, err = decodeParamValue(raw); err != nil {
		return false, err
	}
	switch {
	case c.ValidateAs != nil:
		err = c.ValidateAs(p.User, p.Vhost, p.Name, p.Value)
	case c.Validate != nil:
		err = c.Validate(p.Vhost, p.Name, p.Value)
	}
	if err != nil {
		return false, err
	}
	p.User = "" // not stored: the hooks see what recovery gives them
	var b storage.Batch
	b.Set(storage.ParameterKey(p.Component, p.Vhost, p.Name), encodeRecord(amqp.Table{"value": string(raw)}))
	if err := s.commit.apply(&b); err != nil {
		return false, fmt.Errorf("storing parameter %s/%s in %s: %w", p.Component, p.Name, p.Vhost, err)
	}
	k := paramKey{p.Component, p.Vhost, p.Name}
	s.params.mu.Lock()
	if s.params.mu.values == nil {
		s.params.mu.values = map[paramKey]Parameter{}
	}
	_, existed := s.params.mu.values[k]
	s.params.mu.values[k] = p
	s.params.mu.Unlock()
	if c.Set != nil {
		c.Set(p)
	}
	return !existed, nil
}

// putLimitsParameter sets a vhost's limits from a vhost-limits parameter, with RabbitMQ's
// validation texts.
func (s *Server) putLimitsParameter(p Parameter) (bool, error) {
	m, ok := p.Value.(map[string]any)
	if !ok {
		return false, badRequest("Validation failed\n\nlimits not a list %s\n", amqp.ErlangTermHTML(jsonTerm(p.Value)))
	}
	if p.Name != "limits" {
		return false, badRequest("Validation failed\n\nvhost limits must be named limits, not %s\n", p.Name)
	}
	ls := make(map[string]int64, len(m))
	for k, x := range m {
		n, ok := x.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil {
			return false, badRequest("Validation failed\n\n%s is not a number\n", k)
		}
		ls[k] = i
	}
	_, existed := s.vhostLimitsOf(p.Vhost)
	if err := s.setVhostLimitsDirect(p.Vhost, ls); err != nil {
		return false, err
	}
	return !existed, nil
}

func (s *Server) vhostLimitsOf(vhost string) (map[string]int64, bool) {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	ls, ok := s.adm.mu.limits[vhost]
	return ls, ok && len(ls) > 0
}

// jsonTerm turns a decoded JSON value into the Go value amqp.ErlangTermHTML renders.
func jsonTerm(v any) any {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		f, _ := n.Float64()
		return f
	}
	return v
}

// deleteParameterDirect removes a parameter and calls its component's Clear (ErrNotFound: none).
func (s *Server) deleteParameterDirect(component, vhost, name string) error {
	if component == ParameterVhostLimits {
		if _, ok := s.vhostLimitsOf(vhost); !ok || name != "limits" {
			return ErrNotFound
		}
		return s.setVhostLimitsDirect(vhost, nil)
	}
	s.params.change.Lock()
	defer s.params.change.Unlock()
	k := paramKey{component, vhost, name}
	s.params.mu.Lock()
	_, ok := s.params.mu.values[k]
	c := s.params.mu.components[component]
	s.params.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	var b storage.Batch
	b.Delete(storage.ParameterKey(component, vhost, name))
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting parameter %s/%s in %s: %w", component, name, vhost, err)
	}
	s.params.mu.Lock()
	delete(s.params.mu.values, k)
	s.params.mu.Unlock()
	if c.Clear != nil {
		c.Clear(vhost, name)
	}
	return nil
}

// dropParameters deletes the parameters of a deleted vhost, clearing each.
func (s *Server) dropParameters(vhost string) error {
	s.params.change.Lock()
	defer s.params.change.Unlock()
	var gone []Parameter
	s.params.mu.Lock()
	for k, p := range s.params.mu.values {
		if k.vhost == vhost {
			gone = append(gone, p)
			delete(s.params.mu.values, k)
		}
	}
	comps := make(map[string]ParameterComponent, len(s.params.mu.components))
	for n, c := range s.params.mu.components {
		comps[n] = c
	}
	s.params.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	sortParameters(gone)
	var b storage.Batch
	for _, p := range gone {
		b.Delete(storage.ParameterKey(p.Component, p.Vhost, p.Name))
	}
	err := s.commit.apply(&b)
	for _, p := range gone {
		if c := comps[p.Component]; c.Clear != nil {
			c.Clear(p.Vhost, p.Name)
		}
	}
	if err != nil {
		return fmt.Errorf("deleting the parameters of vhost %s: %w", vhost, err)
	}
	return nil
}

func decodeParamValue(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding a parameter value: %w", err)
	}
	return v, nil
}

// recoverParameters loads the parameters (after the vhosts). Those of a vhost that no longer
// exists are dropped. No component is registered yet: each one's values are replayed to it when
// it registers.
func (s *Server) recoverParameters() error {
	var orphans [][]byte
	err := s.store.Scan(storage.ParameterPrefix(), func(k, rec []byte) error {
		component, vhost, name, err := storage.ParseParameterKey(k)
		if err != nil {
			return err
		}
		if s.vhost(vhost) == nil {
			orphans = append(orphans, append([]byte(nil), k...))
			return nil
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		raw, _ := t["value"].(string)
		v, err := decodeParamValue([]byte(raw))
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		if s.params.mu.values == nil {
			s.params.mu.values = map[paramKey]Parameter{}
		}
		s.params.mu.values[paramKey{component, vhost, name}] = Parameter{Component: component, Vhost: vhost, Name: name, Value: v}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering parameters: %w", err)
	}
	if len(orphans) > 0 {
		var b storage.Batch
		for _, k := range orphans {
			b.Delete(k)
		}
		if err := s.commit.apply(&b); err != nil {
			return fmt.Errorf("dropping parameters of deleted vhosts: %w", err)
		}
	}
	return nil
}
