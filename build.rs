//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed) and feeds the
//! descriptors to tonic's code generator. The encoded descriptor set is also written
//! to `OUT_DIR` so the server can offer gRPC reflection.
//!
//! protox carries the well-known types (`google/protobuf/timestamp.proto`) itself;
//! prost maps them to `prost_types`. Their descriptors must still be in the set
//! served by reflection, or stock clients (grpcurl) cannot resolve a field of type
//! `google.protobuf.Timestamp`: hence `include_imports`, checked below.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/detour/v1/types.proto",
    "proto/detour/v1/scoring.proto",
    "proto/detour/v1/ingest.proto",
    "proto/detour/v1/recommend.proto",
    "proto/detour/v1/admin.proto",
    "proto/detour/v1/anomalies.proto",
];

/// Imported files reflection must be able to hand out.
const WELL_KNOWN: &[&str] = &["google/protobuf/timestamp.proto"];

fn main() -> anyhow::Result<()> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;

    let descriptors = compiler.file_descriptor_set();
    for name in WELL_KNOWN {
        anyhow::ensure!(
            descriptors.file.iter().any(|f| f.name() == *name),
            "{name} is missing from the descriptor set served by reflection"
        );
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("detour_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, but an undecodable request is INVALID_ARGUMENT.
        .codec_path("crate::api::codec::DetourCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
