-- The unit database, version 1. The same text serves SQLite and PostgreSQL
-- (it keeps to the SQL both accept). Times are milliseconds since the Unix
-- epoch (BIGINT).

-- Every unit ever seen, by its Ethernet MAC (upper case, colons: as the
-- NET+OS console prints it).
CREATE TABLE units (
    mac TEXT PRIMARY KEY,
    serial_number TEXT,
    first_seen_ms BIGINT NOT NULL
);

-- Each station: its heartbeat tells the others it is alive.
-- state: running | stopped | stale (another station saw its heartbeat expire)
CREATE TABLE stations (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    profile_name TEXT NOT NULL,
    operator TEXT,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    heartbeat_expiry_ms BIGINT NOT NULL,
    state TEXT NOT NULL
);

-- What each fixture does now (for live views; history is in runs/steps).
-- state: idle | running | removal (waiting for the unit to go) | paused (database lost)
CREATE TABLE fixtures (
    station TEXT NOT NULL,
    name TEXT NOT NULL,
    port TEXT NOT NULL,
    state TEXT NOT NULL,
    unit_mac TEXT,
    run_id TEXT,
    step TEXT,
    progress_pct BIGINT,
    last_outcome TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (station, name)
);

-- One row per time a unit went through the profile. Written (outcome
-- 'running') before the unit is touched, updated after each step, so a crash
-- leaves an 'interrupted' run, never a gap. The id is made by the station, so
-- a record delivered again from the spool is recognised.
-- outcome: running | passed | failed | interrupted
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    unit_mac TEXT NOT NULL REFERENCES units(mac),
    station TEXT NOT NULL,
    fixture TEXT NOT NULL,
    operator TEXT,
    profile_name TEXT NOT NULL,
    profile_sha256 TEXT NOT NULL,
    images TEXT NOT NULL,
    ip TEXT,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    outcome TEXT NOT NULL,
    failure_class TEXT,
    finding TEXT,
    error TEXT
);
CREATE INDEX runs_unit ON runs (unit_mac, started_ms);
CREATE INDEX runs_started ON runs (started_ms);
CREATE INDEX runs_station ON runs (station, started_ms);
-- A unit runs at one fixture of one station at a time.
CREATE UNIQUE INDEX runs_one_running_per_unit ON runs (unit_mac) WHERE outcome = 'running';

-- Each step of a run. inputs_sha256 digests what the step was given (the
-- resolved step and the hashes of the images it sends).
CREATE TABLE steps (
    run_id TEXT NOT NULL REFERENCES runs(id),
    idx BIGINT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    retries BIGINT NOT NULL,
    detail TEXT NOT NULL,
    inputs_sha256 TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- Addresses of a station's ip_pool given to units. The primary key is what
-- makes an address go to one unit at a time, across stations.
-- kept: 1 when the unit keeps the address between runs.
CREATE TABLE leases (
    address TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    unit_mac TEXT NOT NULL,
    station TEXT NOT NULL,
    run_id TEXT,
    kept BIGINT NOT NULL,
    leased_ms BIGINT NOT NULL
);
CREATE INDEX leases_unit ON leases (unit_mac);

-- Units a station would not take, and why.
-- reason: done-before | running-elsewhere | no-identity | no-address
CREATE TABLE refusals (
    id TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    fixture TEXT NOT NULL,
    unit_mac TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX refusals_at ON refusals (at_ms);
