package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Global runtime parameters, as RabbitMQ's: named JSON values of the cluster. Two have a meaning:
// cluster_name (the name GET /api/cluster-name answers; the node name while unset) and
// internal_cluster_id, which RabbitMQ generates on a fresh node ("rabbitmq-cluster-id-" and 22
// base64url characters) and Warren does too, on its first start with a store that lacks one.
// Values are kept as the JSON they were set with ('G' records holding it as a string).
const (
	GlobalClusterName       = "cluster_name"
	GlobalInternalClusterID = "internal_cluster_id"
)

// GlobalParameter is one global parameter.
type GlobalParameter struct {
	Name  string
	Value json.RawMessage
}

// GlobalParameters lists the global parameters, sorted by name.
func (s *Server) GlobalParameters() []GlobalParameter {
	s.adm.mu.RLock()
	out := make([]GlobalParameter, 0, len(s.adm.mu.globals))
	for k, v := range s.adm.mu.globals {
		out = append(out, GlobalParameter{Name: k, Value: v})
	}
	s.adm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// GlobalParameter returns the global parameter name.
func (s *Server) GlobalParameter(name string) (GlobalParameter, error) {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	v, ok := s.adm.mu.globals[name]
	if !ok {
		return GlobalParameter{}, ErrNotFound
	}
	return GlobalParameter{Name: name, Value: v}, nil
}

// putGlobalParameterDirect sets a global parameter to a JSON value and reports whether it was created.
func (s *Server) putGlobalParameterDirect(name string, value json.RawMessage) (created bool, err error) {
	if name == "" {
		return false, badRequest("parameter name must not be empty")
	}
	if !json.Valid(value) {
		return false, badRequest("not_json")
	}
	value = append(json.RawMessage(nil), value...)
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	var b storage.Batch
	b.Set(storage.GlobalParameterKey(name), encodeRecord(amqp.Table{"value": string(value)}))
	if err := s.commit.apply(&b); err != nil {
		return false, fmt.Errorf("storing global parameter %q: %w", name, err)
	}
	_, existed := s.adm.mu.globals[name]
	s.admUpdate(func() { s.adm.mu.globals[name] = value })
	return !existed, nil
}

// deleteGlobalParameterDirect removes a global parameter.
func (s *Server) deleteGlobalParameterDirect(name string) error {
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	if _, ok := s.adm.mu.globals[name]; !ok {
		return ErrNotFound
	}
	var b storage.Batch
	b.Delete(storage.GlobalParameterKey(name))
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting global parameter %q: %w", name, err)
	}
	s.admUpdate(func() { delete(s.adm.mu.globals, name) })
	return nil
}

// ClusterName returns the cluster's name: the cluster_name global parameter if it is a string,
// else the node name (as RabbitMQ answers while none is set).
func (s *Server) ClusterName() string {
	s.adm.mu.RLock()
	raw, ok := s.adm.mu.globals[GlobalClusterName]
	s.adm.mu.RUnlock()
	var name string
	if ok && json.Unmarshal(raw, &name) == nil {
		return name
	}
	return s.NodeName()
}

// SetClusterName renames the cluster: it sets the cluster_name global parameter, kept across
// restarts and exported with the definitions. RabbitMQ accepts any string, even "".
func (s *Server) SetClusterName(name string) error {
	raw, err := json.Marshal(name)
	if err != nil {
		return fmt.Errorf("encoding the cluster name: %w", err)
	}
	_, err = s.PutGlobalParameter(GlobalClusterName, raw)
	return err
}

// newInternalClusterID makes an id in RabbitMQ's form (rabbit_nodes:persistent_cluster_id).
func newInternalClusterID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return "rabbitmq-cluster-id-" + base64.RawURLEncoding.EncodeToString(b)
}

// recoverGlobalParameters loads the global parameters and, on a store without one, records a new
// internal_cluster_id.
func (s *Server) recoverGlobalParameters() error {
	err := s.store.Scan(storage.GlobalParameterPrefix(), func(k, rec []byte) error {
		name, err := storage.ParseGlobalParameterKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		v, _ := t["value"].(string)
		if !json.Valid([]byte(v)) {
			return fmt.Errorf("record %q: the value is not JSON", k)
		}
		s.adm.mu.globals[name] = json.RawMessage(v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering global parameters: %w", err)
	}
	if _, ok := s.adm.mu.globals[GlobalInternalClusterID]; ok {
		return nil
	}
	raw, err := json.Marshal(newInternalClusterID())
	if err != nil {
		return fmt.Errorf("encoding the cluster id: %w", err)
	}
	var b storage.Batch
	b.Set(storage.GlobalParameterKey(GlobalInternalClusterID), encodeRecord(amqp.Table{"value": string(raw)}))
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("storing the cluster id: %w", err)
	}
	s.adm.mu.globals[GlobalInternalClusterID] = raw
	return nil
}
