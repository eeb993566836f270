//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed) and feeds the
//! descriptors to tonic's code generator. The encoded descriptor set is also written
//! to `OUT_DIR` so the server can offer gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/detour/v1/types.proto",
    "proto/detour/v1/scoring.proto",
    "proto/detour/v1/ingest.proto",
    "proto/detour/v1/recommend.proto",
];

fn main() -> anyhow::Result<()> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("detour_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
