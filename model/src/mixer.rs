//! The Mamba-1 mixer of MODEL.md section 2, built on the fused kernels of `memmamba_kernels`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{init, Init, Linear, VarBuilder, VarMap};
use memmamba_kernels::{causal_conv1d, infer, selective_scan};

use crate::config::Config;

/// Recurrent state of one mixer; its size does not depend on how many tokens were processed.
#[derive(Debug, Clone)]
pub struct MixerState {
    /// The last `d_conv - 1` conv inputs, oldest first: (B, d_inner, d_conv - 1).
    pub conv: Tensor,
    /// The SSM hidden state: (B, d_inner, N).
    pub ssm: Tensor,
}

/// One Mamba-1 mixer: in_proj, causal depthwise conv, selective SSM, gated out_proj.
#[derive(Debug, Clone)]
pub struct MambaMixer {
    in_proj: Linear,
    conv_weight: Tensor,
    conv_bias: Tensor,
    x_proj: Linear,
    dt_proj: Linear,
    a_log: Tensor,
    d: Tensor,
    out_proj: Linear,
    d_inner: usize,
    d_state: usize,
    dt_rank: usize,
}

/// `softplus(x) = max(x, 0) + ln(1 + exp(-|x|))`, which never overflows.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

impl MambaMixer {
    /// Loads the mixer's weights from `vb`: `in_proj.weight` (2 d_inner, d),
    /// `conv1d.weight` (d_inner, d_conv), `conv1d.bias` (d_inner), `x_proj.weight`
    /// (R + 2N, d_inner), `dt_proj.weight` (d_inner, R), `dt_proj.bias` (d_inner),
    /// `A_log` (d_inner, N), `D` (d_inner) and `out_proj.weight` (d, d_inner).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, di, n, r) = (cfg.d_model, cfg.d_inner(), cfg.d_state, cfg.dt_rank);
        Ok(Self {
            in_proj: Linear::new(vb.get((2 * di, d), "in_proj.weight")?, None),
            conv_weight: vb.get((di, cfg.d_conv), "conv1d.weight")?,
            conv_bias: vb.get(di, "conv1d.bias")?,
            x_proj: Linear::new(vb.get((r + 2 * n, di), "x_proj.weight")?, None),
            dt_proj: Linear::new(
                vb.get((di, r), "dt_proj.weight")?,
                Some(vb.get(di, "dt_proj.bias")?),
            ),
            a_log: vb.get((di, n), "A_log")?,
            d: vb.get(di, "D")?,
            out_proj: Linear::new(vb.get((d, di), "out_proj.weight")?, None),
            d_inner: di,
            d_state: n,
            dt_rank: r,
        })
    }

    /// Creates fresh weights in `varmap` (which must back `vb`) with the official Mamba-1
    /// initialisation, then loads the mixer from them:
    /// - in_proj, x_proj: Kaiming normal; out_proj: Kaiming normal scaled by `1/sqrt(n_layer)`;
    /// - conv weight and bias: uniform in `±1/sqrt(d_conv)`; dt_proj weight: uniform in
    ///   `±1/sqrt(R)`;
    /// - `A_log[i, j] = ln(j + 1)`; `D = 1`;
    /// - dt bias = inverse softplus of `dt = max(exp(U(ln dt_min, ln dt_max)), dt_init_floor)`.
    pub fn init(cfg: &Config, vb: VarBuilder, varmap: &mut VarMap) -> Result<Self> {
        let (d, di, n, r) = (cfg.d_model, cfg.d_inner(), cfg.d_state, cfg.dt_rank);
        let dtype = vb.dtype();
        let dev = vb.device().clone();
        let kaiming = init::DEFAULT_KAIMING_NORMAL;
        let uniform = |bound: f64| Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let conv_bound = 1.0 / (cfg.d_conv as f64).sqrt();
        vb.get_with_hints((2 * di, d), "in_proj.weight", kaiming)?;
        vb.get_with_hints((di, cfg.d_conv), "conv1d.weight", uniform(conv_bound))?;
        vb.get_with_hints(di, "conv1d.bias", uniform(conv_bound))?;
        vb.get_with_hints((r + 2 * n, di), "x_proj.weight", kaiming)?;
        vb.get_with_hints((di, r), "dt_proj.weight", uniform(1.0 / (r as f64).sqrt()))?;
        vb.get_with_hints(di, "D", Init::Const(1.0))?;

        let a_row = Tensor::arange(1u32, n as u32 + 1, &dev)?
            .to_dtype(DType::F32)?
            .log()?;
        vb.get_with_hints((di, n), "A_log", Init::Const(0.0))?;
        let a_log = a_row.unsqueeze(0)?.repeat((di, 1))?.to_dtype(dtype)?;
        varmap.set_one(vb.pp("A_log").prefix(), a_log)?;

        // ln dt drawn uniform through `vb` (which draws every fresh weight), then replaced by
        // the bias it gives.
        let (lo, up) = (cfg.dt_min.ln(), cfg.dt_max.ln());
        let ln_dt = vb.get_with_hints(di, "dt_proj.bias", Init::Uniform { lo, up })?;
        let dt = ln_dt
            .to_dtype(DType::F32)?
            .exp()?
            .clamp(cfg.dt_init_floor as f32, f32::INFINITY)?;
        // inverse softplus: dt + ln(1 - exp(-dt))
        let dt_bias = (&dt + (1.0 - dt.neg()?.exp()?)?.log()?)?;
        varmap.set_one(vb.pp("dt_proj.bias").prefix(), dt_bias.to_dtype(dtype)?)?;

        let stdev = (1.0 / di as f64).sqrt() / (cfg.n_layer as f64).sqrt();
        vb.get_with_hints((d, di), "out_proj.weight", Init::Randn { mean: 0.0, stdev })?;
        Self::new(cfg, vb)
    }

    /// Runs the mixer on `u` (B, L, d_model), continuing from `state` (zeros when None), and
    /// returns the output (B, L, d_model) and the state after the last token.
    ///
    /// When no gradient can flow (neither `u` nor the weights are tracked), the elementwise
    /// steps between the matmuls run inside the conv and scan loops on the CPU, and in two
    /// kernels around the scan on a GPU ([`memmamba_kernels::infer`]); otherwise, as candle ops
    /// that autograd differentiates.
    pub fn forward(&self, u: &Tensor, state: Option<&MixerState>) -> Result<(Tensor, MixerState)> {
        let fused = (u.device().is_cuda() || (u.device().is_cpu() && u.dtype() == DType::F32))
            && !u.track_op()
            && !self.in_proj.weight().track_op();
        if fused {
            self.forward_fused(u, state)
        } else {
            self.forward_ops(u, state)
        }
    }

    /// [`MambaMixer::forward`] with the inference kernels.
    fn forward_fused(
        &self,
        u: &Tensor,
        state: Option<&MixerState>,
    ) -> Result<(Tensor, MixerState)> {
        let (di, n, r) = (self.d_inner, self.d_state, self.dt_rank);
        let xz = self.in_proj.forward(u)?;
        let (x, conv) = infer::causal_conv1d_silu(
            &xz.narrow(2, 0, di)?,
            &self.conv_weight,
            &self.conv_bias,
            state.map(|s| &s.conv),
        )?;
        let dbc = self.x_proj.forward(&x)?;
        let dt = dbc
            .narrow(2, 0, r)?
            .contiguous()?
            .broadcast_matmul(&self.dt_proj.weight().t()?)?;
        let dt_bias = self
            .dt_proj
            .bias()
            .ok_or_else(|| candle_core::Error::Msg("dt_proj has no bias".into()))?;
        let a = self.a_log.exp()?.neg()?;
        let (y, ssm) = infer::gated_scan(
            &x,
            &infer::GatedScanArgs {
                dt: &dt,
                dt_bias,
                a: &a,
                b: &dbc.narrow(2, r, n)?,
                c: &dbc.narrow(2, r + n, n)?,
                d: &self.d,
                z: &xz.narrow(2, di, di)?,
                h0: state.map(|s| &s.ssm),
            },
        )?;
        let out = self.out_proj.forward(&y)?;
        Ok((out, MixerState { conv, ssm }))
    }

    /// [`MambaMixer::forward`] as candle ops (and the fused conv and scan ops), differentiable.
    fn forward_ops(&self, u: &Tensor, state: Option<&MixerState>) -> Result<(Tensor, MixerState)> {
        let (di, n, r) = (self.d_inner, self.d_state, self.dt_rank);
        let xz = self.in_proj.forward(u)?;
        let x = xz.narrow(2, 0, di)?;
        let z = xz.narrow(2, di, di)?;
        let (x, conv) = causal_conv1d(
            &x,
            &self.conv_weight,
            &self.conv_bias,
            state.map(|s| &s.conv),
        )?;
        let x = candle_nn::ops::silu(&x)?;
        let dbc = self.x_proj.forward(&x)?;
        let dt = dbc.narrow(2, 0, r)?.contiguous()?;
        let b = dbc.narrow(2, r, n)?;
        let c = dbc.narrow(2, r + n, n)?;
        let dt = softplus(&self.dt_proj.forward(&dt)?)?;
        let a = self.a_log.exp()?.neg()?;
        let (y, ssm) = selective_scan(&x, &dt, &a, &b, &c, state.map(|s| &s.ssm))?;
        let y = (y + x.broadcast_mul(&self.d)?)?;
        let y = (y * candle_nn::ops::silu(&z)?)?;
        let out = self.out_proj.forward(&y.contiguous()?)?;
        Ok((out, MixerState { conv, ssm }))
    }
}
