//! Unfused reference implementations built from candle tensor ops. Slow (one op per time
//! step for the scan) but obviously correct: the oracle for the fused kernels.

use candle_core::{Result, Tensor, D};

/// Selective scan; see the crate docs for shapes.
pub fn selective_scan(
    x: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    h0: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (batch, len, dim) = x.dims3()?;
    let n = a.dim(1)?;
    let mut h = match h0 {
        Some(h0) => h0.clone(),
        None => Tensor::zeros((batch, dim, n), x.dtype(), x.device())?,
    };
    let mut ys = Vec::with_capacity(len);
    for t in 0..len {
        let dt_t = dt.narrow(1, t, 1)?.squeeze(1)?; // (B, D)
        let x_t = x.narrow(1, t, 1)?.squeeze(1)?; // (B, D)
        let b_t = b.narrow(1, t, 1)?; // (B, 1, N)
        let c_t = c.narrow(1, t, 1)?; // (B, 1, N)
        let decay = dt_t
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&a.unsqueeze(0)?)?
            .exp()?;
        let input = (&dt_t * &x_t)?.unsqueeze(D::Minus1)?.broadcast_mul(&b_t)?;
        h = ((decay * &h)? + input)?;
        ys.push(h.broadcast_mul(&c_t)?.sum(D::Minus1)?); // (B, D)
    }
    Ok((Tensor::stack(&ys, 1)?, h))
}

/// Causal depthwise conv1d; see the crate docs for shapes.
pub fn causal_conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    prev: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (batch, len, dim) = x.dims3()?;
    let k = w.dim(1)?;
    let prev = match prev {
        Some(p) => p.transpose(1, 2)?, // (B, K-1, D)
        None => Tensor::zeros((batch, k - 1, dim), x.dtype(), x.device())?,
    };
    let padded = Tensor::cat(&[&prev, x], 1)?; // (B, L+K-1, D)
    let mut y = bias
        .reshape((1, 1, dim))?
        .broadcast_as((batch, len, dim))?
        .contiguous()?;
    for j in 0..k {
        let wj = w.narrow(1, j, 1)?.reshape((1, 1, dim))?;
        y = (y + padded.narrow(1, j, len)?.broadcast_mul(&wj)?)?;
    }
    let next_prev = padded
        .narrow(1, len, k - 1)?
        .transpose(1, 2)?
        .contiguous()?;
    Ok((y, next_prev))
}
