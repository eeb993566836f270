//! Detour: risk scoring for fulfillment networks, served over gRPC.
//!
//! An orchestration engine sends events (orders, shipments, site snapshots, inventory)
//! and asks for risk scores; Detour keeps online aggregates of the history in a
//! feature store and scores entities with loaded models. Modules, in dependency order:
//!
//! - [`api`]: gRPC handlers. Validates requests, converts `pb` ↔ domain, maps errors
//!   to status codes. The only module that knows tonic and protobuf, with [`pb`] and
//!   [`app`].
//! - [`scoring`]: turns scoring targets into feature vectors (one store round trip)
//!   and runs the models.
//! - [`features`]: the [`features::FeatureStore`] trait and its in-memory and Redis
//!   backends; how events update aggregates; how aggregates become feature vectors.
//! - [`registry`]: the loaded model of each family.
//! - [`models`]: model artifacts (manifest, weights, checksum) and inference. No IO
//!   beyond reading an artifact at load time; never awaits.
//! - [`network`]: sites, carriers and lanes from `network.toml`.
//! - [`domain`]: plain types shared by every layer (events, times, risk kinds).
//! - [`config`], [`telemetry`], [`app`]: settings, logging, and wiring the server.

pub mod api;
pub mod app;
pub mod config;
pub mod cpu;
pub mod domain;
pub mod features;
pub mod ingest;
pub mod models;
pub mod network;
pub mod pb;
pub mod planning;
pub mod recommend;
pub mod registry;
pub mod schema;
pub mod scoring;
pub mod telemetry;
