// Package registry will hold uc's internal registry: distribution/v3
// embedded, its controller-facing API and the online GC.
//
// Nothing is implemented here yet: the registry arrives with the
// end-to-end slice issue (served in process) and its own issue (container,
// failover, auth, TLS and GC). The registry_spec and registry_status tables
// already exist in state/schema.sql.
package registry
