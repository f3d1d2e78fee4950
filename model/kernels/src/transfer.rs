//! Copies between the host and a tensor's device. On a CUDA device they go through pinned
//! buffers on the GPU's queue ([`crate::staging`]), so the host waits for no work but what a copy
//! depends on; elsewhere they are candle's.

use candle_core::{Device, Result, Tensor, WithDType};

/// Element types that [`to_device`] copies.
#[cfg(feature = "cuda")]
pub trait Element:
    WithDType
    + candle_core::cuda_backend::CudaDType
    + candle_core::cuda_backend::cudarc::driver::DeviceRepr
{
}
/// Element types that [`to_device`] copies.
#[cfg(not(feature = "cuda"))]
pub trait Element: WithDType {}

impl Element for u32 {}
impl Element for f32 {}

/// `data` as a tensor of `shape` on `device`.
pub fn to_device<T: Element>(data: Vec<T>, shape: &[usize], device: &Device) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(gpu) = device {
        return crate::staging::upload(gpu, &data, shape);
    }
    Tensor::from_vec(data, shape, device)
}

/// A copy of an f32 tensor's data to the host, row-major: done already, or under way on a GPU.
pub enum HostCopy {
    Done(Vec<f32>),
    #[cfg(feature = "cuda")]
    Pending(crate::staging::Download),
}

impl HostCopy {
    /// Starts copying `t` (f32) to the host.
    pub fn start(t: &Tensor) -> Result<Self> {
        #[cfg(feature = "cuda")]
        if t.device().is_cuda() {
            return Ok(Self::Pending(crate::staging::Download::start(
                &t.contiguous()?,
            )?));
        }
        Ok(Self::Done(t.flatten_all()?.to_vec1::<f32>()?))
    }

    /// The data, once copied.
    pub fn wait(self) -> Result<Vec<f32>> {
        match self {
            Self::Done(data) => Ok(data),
            #[cfg(feature = "cuda")]
            Self::Pending(download) => download.wait(),
        }
    }
}
