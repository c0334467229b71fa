//! Compiles the plugin's .proto files with protox (pure Rust: no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/backend.proto",
        "proto/goplugin.proto",
        "proto/version.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
