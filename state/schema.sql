-- uc's state schema. It is CRR-compatible, so Corrosion can replicate it:
-- every primary key column is NOT NULL, every other NOT NULL column has a
-- DEFAULT, and there is no UNIQUE, REFERENCES or AUTOINCREMENT. Changes to
-- this file must be additive (new nullable or defaulted columns, indexes).
--
-- One writer per row: *_specs rows are written by users (uc apply, GitOps);
-- every status row is keyed by the node that writes it.
-- Times are unix milliseconds. JSON lives in TEXT columns checked with
-- json_valid.

-- A ucd daemon's record of itself. Written only by that node.
CREATE TABLE IF NOT EXISTS nodes (
    name         TEXT NOT NULL PRIMARY KEY,
    labels       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    state        TEXT NOT NULL DEFAULT 'ready',
    version      TEXT NOT NULL DEFAULT '',
    started_at   INTEGER NOT NULL DEFAULT 0,
    heartbeat_at INTEGER NOT NULL DEFAULT 0,
    -- api.NodeCapacity: builder drivers and such.
    capacity     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(capacity)),
    -- api.NodeDetail: what the node reports about its upkeep (prunes).
    detail       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
);

-- Desired builds, one per Compose service with build:. Written by users.
-- generation moves only when spec changes; uid changes when a deleted spec
-- is created again, so status of the old incarnation is never mistaken for
-- the new one's.
CREATE TABLE IF NOT EXISTS build_specs (
    name       TEXT NOT NULL PRIMARY KEY,
    project    TEXT NOT NULL DEFAULT '',
    uid        TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 1,
    spec       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),
    updated_at INTEGER NOT NULL DEFAULT 0,
    -- Where the project was applied from (api.Project.Origin), so that an
    -- apply from elsewhere under the same project name does not prune it.
    origin     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS build_specs_project ON build_specs (project);

-- A builder node's status of one build spec.
CREATE TABLE IF NOT EXISTS build_status (
    name                TEXT NOT NULL,
    node                TEXT NOT NULL,
    spec_uid            TEXT NOT NULL DEFAULT '',
    observed_generation INTEGER NOT NULL DEFAULT 0,
    phase               TEXT NOT NULL DEFAULT 'pending',
    digest              TEXT NOT NULL DEFAULT '',
    message             TEXT NOT NULL DEFAULT '',
    conditions          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(conditions)),
    detail              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    updated_at          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, node)
);

-- Desired images and where they are needed. Written by users.
CREATE TABLE IF NOT EXISTS image_specs (
    name       TEXT NOT NULL PRIMARY KEY,
    project    TEXT NOT NULL DEFAULT '',
    uid        TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 1,
    spec       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),
    updated_at INTEGER NOT NULL DEFAULT 0,
    -- Where the project was applied from (api.Project.Origin), so that an
    -- apply from elsewhere under the same project name does not prune it.
    origin     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS image_specs_project ON image_specs (project);

-- One node's record of one image: (image, node). Written only by that node.
CREATE TABLE IF NOT EXISTS image_presence (
    image               TEXT NOT NULL,
    node                TEXT NOT NULL,
    spec_uid            TEXT NOT NULL DEFAULT '',
    observed_generation INTEGER NOT NULL DEFAULT 0,
    state               TEXT NOT NULL DEFAULT 'pending',
    digest              TEXT NOT NULL DEFAULT '',
    error               TEXT NOT NULL DEFAULT '',
    detail              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    updated_at          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (image, node)
);

-- An external image's tag resolved to a digest, once, by one node (the
-- image's owner by rendezvous hashing): (image, node), written only by that
-- node. Every node pulls the digest of the newest row for the spec's
-- current incarnation and generation, so nodes never disagree on a tag.
CREATE TABLE IF NOT EXISTS image_resolution (
    image               TEXT NOT NULL,
    node                TEXT NOT NULL,
    spec_uid            TEXT NOT NULL DEFAULT '',
    observed_generation INTEGER NOT NULL DEFAULT 0,
    ref                 TEXT NOT NULL DEFAULT '',
    digest              TEXT NOT NULL DEFAULT '',
    error               TEXT NOT NULL DEFAULT '',
    updated_at          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (image, node)
);

-- The desired internal registry: a single row named 'default'.
CREATE TABLE IF NOT EXISTS registry_spec (
    name       TEXT NOT NULL PRIMARY KEY,
    uid        TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 1,
    spec       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),
    updated_at INTEGER NOT NULL DEFAULT 0
);

-- A node's record of the registry it runs (or ran).
CREATE TABLE IF NOT EXISTS registry_status (
    node                TEXT NOT NULL PRIMARY KEY,
    observed_generation INTEGER NOT NULL DEFAULT 0,
    address             TEXT NOT NULL DEFAULT '',
    conditions          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(conditions)),
    detail              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    updated_at          INTEGER NOT NULL DEFAULT 0
);

-- The managed registry's generated credential (uc registry configure
-- --auth): every node's ucd and uc read it. A single row named 'default'.
CREATE TABLE IF NOT EXISTS registry_credentials (
    name       TEXT NOT NULL PRIMARY KEY,
    username   TEXT NOT NULL DEFAULT '',
    password   TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL DEFAULT 0
);

-- Desired GitOps syncs (uc sync add): a repository, ref and path whose
-- file the owner node applies on every new commit. Written by users.
CREATE TABLE IF NOT EXISTS sync_specs (
    name       TEXT NOT NULL PRIMARY KEY,
    uid        TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 1,
    spec       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),
    updated_at INTEGER NOT NULL DEFAULT 0
);

-- A node's record of one sync (api.SyncStatus as JSON): (name, node),
-- written only by that node.
CREATE TABLE IF NOT EXISTS sync_status (
    name       TEXT NOT NULL,
    node       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(status)),
    updated_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, node)
);
