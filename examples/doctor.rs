//! `cargo run --release --example doctor`: which adapter liandan picks, the limits it uses,
//! and a self-test of each kernel family against a CPU reference (one pass/fail line each).
//! Exits non-zero when any self-test fails.

use std::process::ExitCode;

use clap::Parser;
use std::time::Instant;

use liandan::ops::conv::{Conv2dParams, conv2d};
use liandan::ops::loss::cross_entropy;
use liandan::ops::matmul::{MatmulKernel, matmul_with};
use liandan::ops::norm::batch_norm_train;
use liandan::ops::pool::{Pool2d, max_pool2d};
use liandan::{Device, Result, Rng, Tensor};

/// Largest |got - want| relative to max(|want|, 1).
fn max_rel_err(got: &[f32], want: &[f64]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            let e = (g as f64 - w).abs() / w.abs().max(1.0);
            if e.is_nan() { f64::INFINITY } else { e }
        })
        .fold(0.0, f64::max)
}

fn random(device: &Device, rng: &mut Rng, shape: &[usize]) -> Result<(Tensor, Vec<f64>)> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.uniform_in(-2.0, 2.0) as f32).collect();
    let t = Tensor::from_slice(device, &values, shape)?;
    Ok((t, values.iter().map(|&v| v as f64).collect()))
}

fn elementwise(d: &Device, rng: &mut Rng) -> Result<f64> {
    let (x, xs) = random(d, rng, &[3, 5, 7, 9])?;
    let (b, bs) = random(d, rng, &[1, 5, 1, 1])?;
    let got = x.hardswish()?.add(&b)?.to_vec()?;
    let want: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (v + 3.0).clamp(0.0, 6.0) / 6.0 + bs[(i / 63) % 5])
        .collect();
    Ok(max_rel_err(&got, &want))
}

fn reduce(d: &Device, rng: &mut Rng) -> Result<f64> {
    let (x, xs) = random(d, rng, &[4, 33, 65])?;
    let got = x.sum(&[0, 2], false)?.to_vec()?;
    let mut want = vec![0.0; 33];
    for (i, v) in xs.iter().enumerate() {
        want[(i / 65) % 33] += v;
    }
    Ok(max_rel_err(&got, &want))
}

fn matmul(d: &Device, rng: &mut Rng, kind: MatmulKernel) -> Result<f64> {
    let (m, k, n) = (33, 70, 65);
    let (a, av) = random(d, rng, &[m, k])?;
    let (b, bv) = random(d, rng, &[k, n])?;
    let got = matmul_with(&a, &b, false, false, kind)?.to_vec()?;
    let want: Vec<f64> = (0..m * n)
        .map(|o| (0..k).map(|p| av[o / n * k + p] * bv[p * n + o % n]).sum())
        .collect();
    Ok(max_rel_err(&got, &want))
}

fn softmax(d: &Device, rng: &mut Rng) -> Result<f64> {
    let (x, xs) = random(d, rng, &[7, 1000])?;
    let got = x.softmax()?.to_vec()?;
    let mut want = Vec::new();
    for row in xs.chunks(1000) {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        want.extend(row.iter().map(|v| (v - m).exp() / s));
    }
    Ok(max_rel_err(&got, &want))
}

/// A plain CPU convolution (no padding, stride 1) for the conv self-tests.
fn conv_reference(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    wt: &[f64],
    [co, cg, k, _]: [usize; 4],
    groups: usize,
) -> Vec<f64> {
    let (ho, wo) = (h - k + 1, w - k + 1);
    let mut y = vec![0.0; n * co * ho * wo];
    for (o, v) in y.iter_mut().enumerate() {
        let (b, oc, oh, ow) = (o / (co * ho * wo), o / (ho * wo) % co, o / wo % ho, o % wo);
        let g = oc / (co / groups);
        for cl in 0..cg {
            for ky in 0..k {
                for kx in 0..k {
                    let xi = ((b * c + g * cg + cl) * h + oh + ky) * w + ow + kx;
                    *v += x[xi] * wt[((oc * cg + cl) * k + ky) * k + kx];
                }
            }
        }
    }
    y
}

fn conv(d: &Device, rng: &mut Rng, c: usize, co: usize, groups: usize) -> Result<f64> {
    let (xs, ws) = ([2, c, 9, 7], [co, c / groups, 3, 3]);
    let (x, xv) = random(d, rng, &xs)?;
    let (w, wv) = random(d, rng, &ws)?;
    let got = conv2d(&x, &w, None, &Conv2dParams::square(1, 0, 1, groups))?.to_vec()?;
    Ok(max_rel_err(&got, &conv_reference(&xv, xs, &wv, ws, groups)))
}

fn pool(d: &Device, rng: &mut Rng) -> Result<f64> {
    let (x, xv) = random(d, rng, &[2, 3, 6, 6])?;
    let got = max_pool2d(&x, &Pool2d::new((2, 2)))?.0.to_vec()?;
    let want: Vec<f64> = (0..2 * 3 * 9)
        .map(|o| {
            let (plane, oh, ow) = (o / 9, o / 3 % 3, o % 3);
            let at = |dy: usize, dx: usize| xv[plane * 36 + (2 * oh + dy) * 6 + 2 * ow + dx];
            at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1))
        })
        .collect();
    Ok(max_rel_err(&got, &want))
}

fn batch_norm(d: &Device, rng: &mut Rng) -> Result<f64> {
    let (x, xv) = random(d, rng, &[4, 3, 5, 5])?;
    let (mean, var) = (Tensor::zeros(d, &[3])?, Tensor::ones(d, &[3])?);
    let got = batch_norm_train(&x, None, None, &mean, &var, 0.1, 1e-5)?
        .y
        .to_vec()?;
    let mut want = vec![0.0; xv.len()];
    for ch in 0..3 {
        let idx: Vec<usize> = (0..xv.len()).filter(|i| i / 25 % 3 == ch).collect();
        let m = idx.iter().map(|&i| xv[i]).sum::<f64>() / idx.len() as f64;
        let v = idx.iter().map(|&i| (xv[i] - m).powi(2)).sum::<f64>() / idx.len() as f64;
        for &i in &idx {
            want[i] = (xv[i] - m) / (v + 1e-5).sqrt();
        }
    }
    Ok(max_rel_err(&got, &want))
}

fn loss(d: &Device, rng: &mut Rng) -> Result<f64> {
    let (x, xv) = random(d, rng, &[4, 10])?;
    let targets = [3, 0, 9, 5];
    let got = cross_entropy(&x, &targets, 0.1)?.to_vec()?;
    let mut total = 0.0;
    for (row, &t) in xv.chunks(10).zip(&targets) {
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        let mean_nll = row.iter().map(|v| lse - v).sum::<f64>() / 10.0;
        total += 0.9 * (lse - row[t]) + 0.1 * mean_nll;
    }
    Ok(max_rel_err(&got, &[total / 4.0]))
}

/// Report the adapter liandan picks and self-test every kernel family on it.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {}

fn main() -> ExitCode {
    Args::parse();
    let device = match Device::new() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let s = device.summary();
    println!("adapter      {}", s.name);
    println!("backend      {}", s.backend);
    println!(
        "device type  {}{}",
        s.device_type,
        if s.is_software {
            " (software: slow, but real)"
        } else {
            ""
        }
    );
    println!("driver       {}", s.driver);
    println!("subgroups    {:?}", s.subgroup_sizes);
    let l = device.limits();
    println!(
        "limits       max_storage_buffer_binding_size {} bytes",
        l.max_storage_buffer_binding_size
    );
    println!("             max_buffer_size {} bytes", l.max_buffer_size);
    println!(
        "             max_compute_workgroups_per_dimension {}",
        l.max_compute_workgroups_per_dimension
    );
    println!(
        "             max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "             max_compute_workgroup_storage_size {} bytes",
        l.max_compute_workgroup_storage_size
    );
    println!(
        "             max_storage_buffers_per_shader_stage {}",
        l.max_storage_buffers_per_shader_stage
    );
    println!();

    device.set_poison(Some(f32::NAN));
    let mut rng = Rng::new(2026);
    type Check = fn(&Device, &mut Rng) -> Result<f64>;
    let mut checks: Vec<(&str, Check)> = vec![
        ("elementwise (hardswish, broadcast add)", elementwise),
        ("reduce (sum over axes 0, 2)", reduce),
        ("matmul portable", |d, r| {
            matmul(d, r, MatmulKernel::Portable)
        }),
        ("matmul tiled (workgroup memory)", |d, r| {
            matmul(d, r, MatmulKernel::Tiled)
        }),
        ("softmax (1000 classes)", softmax),
        ("conv2d 3x3 (im2col + GEMM)", |d, r| conv(d, r, 5, 4, 1)),
        ("conv2d 3x3 grouped, 2 groups", |d, r| conv(d, r, 4, 6, 2)),
        ("conv2d 3x3 depthwise (direct)", |d, r| conv(d, r, 6, 6, 6)),
        ("max_pool2d 2x2", pool),
        ("batch_norm (training statistics)", batch_norm),
        ("cross_entropy (label smoothing 0.1)", loss),
    ];
    if s.subgroup_sizes == Some((8, 8)) {
        checks.push(("matmul subgroup-8", |d, r| {
            matmul(d, r, MatmulKernel::Subgroup8)
        }));
    }
    let mut failed = 0;
    for (name, check) in checks {
        let start = Instant::now();
        let verdict = match check(&device, &mut rng) {
            Ok(err) if err <= 1e-5 => format!("pass  max rel err {err:.1e}"),
            Ok(err) => format!("FAIL  max rel err {err:.1e} > 1e-5"),
            Err(e) => format!("FAIL  {e}"),
        };
        failed += usize::from(verdict.starts_with("FAIL"));
        println!(
            "{name:<40} {verdict}  ({:.0} ms)",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    println!();
    if failed == 0 {
        println!("all self-tests passed");
        ExitCode::SUCCESS
    } else {
        println!("{failed} self-test(s) failed");
        ExitCode::FAILURE
    }
}
