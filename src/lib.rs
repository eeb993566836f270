//! Detour: risk scoring for fulfillment networks, served over gRPC.
//!
//! An orchestration engine sends events (orders, shipments, site snapshots, inventory)
//! and asks for risk scores; Detour keeps online aggregates of the history in a
//! feature store and scores entities with loaded models. Modules, in dependency
//! order (each uses only those below it):
//!
//! - [`api`]: gRPC handlers. Validates requests, converts `pb` ↔ domain, maps errors
//!   to status codes. The only module that knows tonic and protobuf, with [`pb`] and
//!   [`app`].
//! - [`lifecycle`]: model versions deployed, compared (shadow, canary, on
//!   outcomes), promoted and rolled back while serving; the registry's state on
//!   disk or in Redis.
//! - [`ingest`]: the one ingest path every event source calls (and which
//!   reports outcomes to a running comparison).
//! - [`planning`]: the IO around a recommendation (which records, one read).
//! - [`scoring`]: turns scoring targets into feature vectors (one store round trip)
//!   and runs the models of one snapshot.
//! - [`recommend`]: candidates, hard constraints and ranking. No IO; never awaits.
//! - [`registry`]: the snapshot of each family's route (active model, candidate),
//!   swapped atomically; comparisons of a candidate with the active model.
//! - [`models`]: model artifacts (manifest, weights, checksum, golden rows), the
//!   model repository on disk, and inference. No IO beyond the repository's
//!   files; never awaits.
//! - [`features`]: the [`features::FeatureStore`] trait and its in-memory and Redis
//!   backends; how events update aggregates; how aggregates become feature vectors.
//! - [`schema`]: each family's feature schema, the feature vector, the table of
//!   families.
//! - [`domain`], [`network`]: plain types shared by every layer (events, times,
//!   risk kinds); sites, carriers and lanes from `network.toml`.
//! - [`anomaly`]: streaming detectors of anomalies in series (no IO; used
//!   offline by `detour-train detect` so far).
//! - [`config`], [`telemetry`], [`cpu`], [`app`]: settings, logging, where CPU-heavy
//!   work runs, and wiring the server.
//!
//! Deliberately absent: protobuf below `api`; IO in `recommend`, `models`,
//! `schema` and `domain`; any second definition of a feature, an ingest step or a
//! family; a global registry (a request uses the snapshot it was given).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anomaly;
pub mod api;
pub mod app;
pub mod config;
pub mod cpu;
pub mod domain;
pub mod features;
pub mod ingest;
pub mod lifecycle;
pub mod models;
pub mod monitor;
pub mod network;
pub mod pb;
pub mod planning;
pub mod recommend;
pub mod registry;
pub mod schema;
pub mod scoring;
pub mod telemetry;
