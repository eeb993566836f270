//! Generated protobuf and gRPC code for `detour.v1`, fenced in one module.
//! Everything here is produced by `build.rs`; nothing outside `api` and `app`
//! should need it.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("detour.v1");

/// Encoded descriptors of every `detour.v1` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/detour_descriptor.bin"));
