//! Copies between the host and a CUDA device through page-locked (pinned) host buffers, which
//! the GPU copies from and into on its own queue: the host does not wait for the work queued
//! before the copy. A copy from or into ordinary (pageable) host memory, as candle makes them,
//! first waits for the whole queue, so a read that sends a few small arrays each way per layer
//! (the note scores down, the pool's layout up) left the GPU idle while the host replayed the
//! pool, and the host idle while the GPU ran the mixer.
//!
//! Pinned memory is slow to allocate, so the buffers are kept in a free list and reused; each
//! carries the event recorded after the last copy that used it, and is taken again only once
//! that event has passed.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    result, CudaContext, CudaEvent, DevicePtr, DevicePtrMut, DeviceRepr,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaDevice, Result, Tensor};

use crate::cuda::{as_cuda, cuda_of, tensor, view};

/// Free buffers kept for reuse, at most (a read queues a dozen copies per layer).
const KEPT: usize = 32;
/// The smallest buffer allocated, in bytes.
const MIN_BYTES: usize = 1 << 16;

/// Page-locked host memory of one device's context and the event recorded after the last copy
/// that used it.
struct Pinned {
    ptr: *mut u8,
    bytes: usize,
    ordinal: usize,
    done: CudaEvent,
}

// SAFETY: the buffer is plain host memory owned by this value alone; the event is a driver
// handle usable from any thread.
unsafe impl Send for Pinned {}

impl Pinned {
    fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Self> {
        ctx.bind_to_thread().w()?;
        let bytes = bytes.next_power_of_two().max(MIN_BYTES);
        // SAFETY: a fresh allocation, freed in Drop.
        let ptr = unsafe { result::malloc_host(bytes, 0) }.w()?.cast::<u8>();
        let done = ctx.new_event(None).w()?;
        Ok(Self {
            ptr,
            bytes,
            ordinal: ctx.ordinal(),
            done,
        })
    }

    /// The first `len` elements of the buffer as `T`, after the last copy that used it.
    fn slice<T>(&mut self, len: usize) -> Result<&mut [T]> {
        assert!(len * std::mem::size_of::<T>() <= self.bytes);
        self.done.synchronize().w()?;
        // SAFETY: the buffer holds `bytes` >= len * size_of::<T>() bytes, page-aligned (so
        // aligned for T), and no copy uses it any more.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<T>(), len) })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Errors cannot be reported from here; the memory is the driver's to reclaim then.
        let _ = self.done.synchronize();
        // SAFETY: allocated by malloc_host, no copy uses it any more.
        let _ = unsafe { result::free_host(self.ptr.cast()) };
    }
}

static FREE: Mutex<Vec<Pinned>> = Mutex::new(Vec::new());

/// A free buffer of at least `bytes` for `ctx` whose last copy is done, or a new one. A buffer
/// whose copy is still queued is never waited for: that copy may sit behind the mixer's kernels.
fn take(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Pinned> {
    let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ready = free
        .iter()
        .position(|p| p.ordinal == ctx.ordinal() && p.bytes >= bytes && p.done.is_complete());
    match ready {
        Some(i) => Ok(free.swap_remove(i)),
        None => {
            drop(free);
            Pinned::new(ctx, bytes)
        }
    }
}

/// Puts a buffer back on the free list. Past [`KEPT`] buffers, the smallest one whose copy is
/// done is freed (freeing one still in use would wait for its copy).
fn give_back(buffer: Pinned) {
    let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    free.push(buffer);
    if free.len() > KEPT {
        let done = (0..free.len())
            .filter(|&i| free[i].done.is_complete())
            .min_by_key(|&i| free[i].bytes);
        if let Some(i) = done {
            free.swap_remove(i);
        }
    }
}

/// `data` as a tensor of `shape` on `dev`, copied through a pinned buffer.
pub fn upload<T: CudaDType + DeviceRepr + candle_core::WithDType>(
    dev: &CudaDevice,
    data: &[T],
    shape: &[usize],
) -> Result<Tensor> {
    if data.is_empty() {
        return Tensor::from_vec(
            Vec::<T>::new(),
            shape,
            &candle_core::Device::Cuda(dev.clone()),
        );
    }
    let stream = dev.cuda_stream();
    let mut buffer = take(stream.context(), std::mem::size_of_val(data))?;
    let host = buffer.slice::<T>(data.len())?;
    host.copy_from_slice(data);
    // SAFETY: every element is written by the copy below.
    let mut out = unsafe { dev.alloc::<T>(data.len())? };
    {
        let (dst, _record) = out.device_ptr_mut(&stream);
        // SAFETY: `dst` holds data.len() elements; the pinned source stays allocated until the
        // event recorded below has passed.
        unsafe { result::memcpy_htod_async(dst, &*host, stream.cu_stream()) }.w()?;
    }
    buffer.done.record(&stream).w()?;
    give_back(buffer);
    Ok(tensor(out, dev, shape))
}

/// A copy of a tensor's f32 data to the host, under way on the GPU's queue.
pub struct Download {
    buffer: Option<Pinned>,
    len: usize,
}

impl Download {
    /// Starts copying `t` (contiguous f32 on a CUDA device) to the host.
    pub fn start(t: &Tensor) -> Result<Self> {
        let op = "download";
        let (storage, layout) = cuda_of(t, op)?;
        let cuda = as_cuda(&storage);
        let src = view::<f32>((cuda, layout), op)?;
        let stream = cuda.device().cuda_stream();
        let len = src.len();
        let mut buffer = take(stream.context(), len * 4)?;
        let host = buffer.slice::<f32>(len)?;
        {
            let (src, _record) = src.device_ptr(&stream);
            // SAFETY: `host` holds len elements and stays allocated (owned by this value, or
            // back on the free list after its event) until the copy is done.
            unsafe { result::memcpy_dtoh_async(host, src, stream.cu_stream()) }.w()?;
        }
        buffer.done.record(&stream).w()?;
        Ok(Self {
            buffer: Some(buffer),
            len,
        })
    }

    /// Waits for the copy (and only for the work queued before it) and returns the data.
    pub fn wait(mut self) -> Result<Vec<f32>> {
        let mut buffer = self
            .buffer
            .take()
            .expect("a download holds its buffer until waited");
        let data = buffer.slice::<f32>(self.len)?.to_vec();
        give_back(buffer);
        Ok(data)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            give_back(buffer);
        }
    }
}
