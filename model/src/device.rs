//! Choosing the compute device from a user's `--device` spec: `auto`, `cpu`, `cuda` or `cuda:N`.
//!
//! `auto` takes the first CUDA GPU when the build has the `cuda` feature and a GPU and driver are
//! there, and otherwise falls back to the CPU with a one-line notice (never a panic). An explicit
//! `cuda` / `cuda:N` that cannot be had is an error.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use thiserror::Error;

/// A parsed device spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA GPU if there is one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA GPU with this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

/// A device spec that does not parse, or a CUDA device that cannot be opened.
#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected auto, cpu, cuda or cuda:N")]
    Parse(String),
    #[error("cannot use CUDA device {ordinal}: {reason}")]
    Unavailable { ordinal: usize, reason: String },
}

/// Parses `auto`, `cpu`, `cuda` or `cuda:N` (case-insensitive, surrounding spaces ignored).
pub fn parse_device(spec: &str) -> Result<DeviceChoice, DeviceError> {
    let s = spec.trim().to_ascii_lowercase();
    match s.as_str() {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceChoice::Cuda)
            .ok_or_else(|| DeviceError::Parse(spec.to_string())),
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_device(s)
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Opens the chosen device (a GPU with TF32 matrix products, see [`allow_tf32`]). Returns it
/// with a one-line notice when `auto` fell back to the CPU.
pub fn select(choice: DeviceChoice) -> Result<(Device, Option<String>), DeviceError> {
    let opened = open(choice)?;
    if opened.0.is_cuda() {
        allow_tf32();
    }
    Ok(opened)
}

fn open(choice: DeviceChoice) -> Result<(Device, Option<String>), DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, None)),
        DeviceChoice::Cuda(ordinal) => {
            Device::new_cuda(ordinal)
                .map(|d| (d, None))
                .map_err(|e| DeviceError::Unavailable {
                    ordinal,
                    reason: one_line(&e.to_string()),
                })
        }
        DeviceChoice::Auto => Ok(match Device::new_cuda(0) {
            Ok(d) => (d, None),
            Err(e) => {
                let why = if cfg!(feature = "cuda") {
                    one_line(&e.to_string())
                } else {
                    "built without the `cuda` feature".to_string()
                };
                (
                    Device::Cpu,
                    Some(format!("no CUDA device ({why}); running on the CPU")),
                )
            }
        }),
    }
}

/// Lets f32 matrix products on a CUDA device run on the tensor cores in TF32 (inputs rounded
/// to a 10-bit mantissa, sums in f32), as PyTorch's `allow_tf32` does. The projections are most
/// of a read's arithmetic; on an H100 this reads a document about 1.45x faster with notes off
/// (docs/BENCHMARKS.md). Outputs then differ from the CPU's at TF32's precision (products of
/// inputs rounded to 11 significant bits), not at f32's.
fn allow_tf32() {
    #[cfg(feature = "cuda")]
    candle_core::cuda_backend::set_gemm_reduced_precision_f32(true);
}

/// The first line of an error message.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spec() {
        assert_eq!(parse_device("auto").unwrap(), DeviceChoice::Auto);
        assert_eq!(parse_device(" CPU ").unwrap(), DeviceChoice::Cpu);
        assert_eq!(parse_device("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(parse_device("cuda:3").unwrap(), DeviceChoice::Cuda(3));
        assert_eq!(
            "Cuda:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(1)
        );
        for choice in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(2)] {
            assert_eq!(parse_device(&choice.to_string()).unwrap(), choice);
        }
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "", "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "metal", "cpu:0",
        ] {
            let err = parse_device(bad).unwrap_err();
            assert!(
                err.to_string()
                    .contains("expected auto, cpu, cuda or cuda:N"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cpu_is_always_there() {
        let (dev, notice) = select(DeviceChoice::Cpu).unwrap();
        assert!(dev.is_cpu());
        assert!(notice.is_none());
    }

    #[test]
    fn auto_takes_the_gpu_or_falls_back_with_a_notice() {
        let gpu = Device::new_cuda(0).is_ok();
        let (dev, notice) = select(DeviceChoice::Auto).unwrap();
        if gpu {
            assert!(dev.is_cuda());
            assert!(notice.is_none());
        } else {
            assert!(dev.is_cpu());
            let notice = notice.expect("a fallback notice");
            assert!(!notice.contains('\n'), "{notice}");
            assert!(notice.ends_with("running on the CPU"), "{notice}");
            if !cfg!(feature = "cuda") {
                assert!(notice.contains("without the `cuda` feature"), "{notice}");
            }
        }
    }

    #[test]
    fn explicit_cuda_without_a_gpu_is_an_error() {
        if Device::new_cuda(0).is_ok() {
            assert!(select(DeviceChoice::Cuda(0)).unwrap().0.is_cuda());
        } else {
            let err = select(DeviceChoice::Cuda(0)).unwrap_err();
            assert!(
                err.to_string().starts_with("cannot use CUDA device 0"),
                "{err}"
            );
        }
        // No machine has this many GPUs.
        assert!(select(DeviceChoice::Cuda(4096)).is_err());
    }
}
