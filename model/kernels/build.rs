//! With the `cuda` feature, compiles `kernels/*.cu` to PTX in OUT_DIR (embedded by src/cuda.rs)
//! with the nvcc of CUDA_HOME (or PATH), for CUDA_COMPUTE_CAP (default 90, Hopper). Without it,
//! does nothing: the default build needs no CUDA toolchain.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: [&str; 5] = ["scan", "conv", "gate", "attention", "gather"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = match std::env::var("CUDA_HOME") {
        Ok(home) => PathBuf::from(home).join("bin").join("nvcc"),
        Err(_) => PathBuf::from("nvcc"),
    };
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    for name in KERNELS {
        let ptx = out.join(format!("{name}.ptx"));
        let status = Command::new(&nvcc)
            .args([
                "-ptx",
                "-O3",
                "-std=c++17",
                &format!("-arch=sm_{cap}"),
                "-o",
            ])
            .arg(&ptx)
            .arg(format!("kernels/{name}.cu"))
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); see scripts/setup-cuda.sh",
                    nvcc.display()
                )
            });
        assert!(status.success(), "nvcc failed on kernels/{name}.cu");
    }
}
