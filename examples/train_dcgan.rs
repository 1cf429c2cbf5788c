//! Trains a DCGAN (`models::dcgan`) on CIFAR-10: one class (`--class 7` for horses) or
//! all of them.
//!
//! ```text
//! cargo run --release --example train_dcgan -- --width 32 --batch 32 --steps 500
//! ```
//!
//! Each step trains the discriminator on a real batch (target 1) and a generated one
//! (target 0), then the generator to make the discriminator say 1 on its images: the
//! non-saturating loss, binary cross-entropy with logits, Adam (lr 2e-4, β1 = 0.5) for
//! both, as the DCGAN paper. Every `--sample-every` steps it writes `samples.png` (an 8×8
//! grid from one fixed noise batch, so the grids show the same 64 draws improving; also
//! kept as `samples_<step>.png`), `losses.csv` and `losses.png` (left: both losses; right:
//! the discriminator's mean probability on real and on generated images), and an atomic
//! checkpoint that `--resume` continues from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use liandan::autograd::Tape;
use liandan::data::cifar10::{self, CLASSES, Cifar10, IMAGE_BYTES};
use liandan::io::{apply_checkpoint, load_checkpoint, save_checkpoint};
use liandan::models::dcgan;
use liandan::nn::{self, Ctx, Module, ParamStore, Sequential};
use liandan::optim::{AdamW, AdamWConfig, Optimizer};
use liandan::report::image::Canvas;
use liandan::report::plot::{Curve, Panel, write_panels};
use liandan::{Device, Error, Result, Rng, Tensor};

/// Train a DCGAN on CIFAR-10.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// CIFAR-10 binary release: its cifar-10-batches-bin directory or one holding it
    /// (default: $CIFAR10_DIR, else data/, else ../shared/data/)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train on this class only (0-9: airplane … truck); all classes by default
    #[arg(long)]
    class: Option<usize>,
    /// Base channels of both networks (the generator's last hidden layer)
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Images per step (real and generated each)
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Train until this many steps are done
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Size of the noise vector
    #[arg(long, default_value_t = 100)]
    nz: usize,
    /// Adam's learning rate
    #[arg(long, default_value_t = 2e-4)]
    lr: f32,
    /// Write samples, losses and a checkpoint every this many steps
    #[arg(long, default_value_t = 100)]
    sample_every: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the run whose checkpoint is in --out
    #[arg(long)]
    resume: bool,
    /// Output directory
    #[arg(long, default_value = "runs/dcgan")]
    out: PathBuf,
}

/// One logged step: the two losses and the discriminator's mean probability of "real"
/// on real and on generated images.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Logged {
    step: usize,
    loss_d: f64,
    loss_g: f64,
    d_real: f64,
    d_fake: f64,
}

/// The models, their tensors (one store: `generator.*` and `discriminator.*`) and the
/// optimizer, at a step.
struct Gan {
    generator: Sequential,
    discriminator: Sequential,
    store: ParamStore,
    adam: AdamW,
    step: usize,
}

fn build(device: &Device, args: &Args) -> Result<Gan> {
    let ((generator, discriminator), store) = nn::build(device, args.seed, |s| {
        Ok((
            dcgan::generator(&mut s.pp("generator"), args.nz, args.width)?,
            dcgan::discriminator(&mut s.pp("discriminator"), args.width)?,
        ))
    })?;
    let adam = AdamW::new(AdamWConfig {
        beta1: 0.5,
        beta2: 0.999,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    })?;
    Ok(Gan {
        generator,
        discriminator,
        store,
        adam,
        step: 0,
    })
}

/// `batch` training images of the chosen class(es) drawn for `step`, scaled to [-1, 1].
fn real_batch(data: &Cifar10, pool: &[usize], batch: usize, seed: u64, step: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut images = Vec::with_capacity(batch * IMAGE_BYTES);
    for _ in 0..batch {
        let i = pool[rng.below(pool.len() as u64) as usize];
        images.extend(data.image(i).iter().map(|&v| v as f32 / 127.5 - 1.0));
    }
    images
}

/// The discriminator's logits `[N]` for images `x`.
fn logits(
    discriminator: &Sequential,
    ctx: &mut Ctx,
    x: &liandan::autograd::Var,
) -> Result<liandan::autograd::Var> {
    let y = discriminator.forward(ctx, x)?;
    ctx.tape.reshape(&y, &[x.shape()[0]])
}

/// Only the gradients whose names start with `prefix`.
fn part(grads: HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    grads
        .into_iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .collect()
}

/// One step: the discriminator, then the generator against the updated discriminator.
fn train_step(gan: &mut Gan, device: &Device, real: Vec<f32>, args: &Args) -> Result<Logged> {
    let n = args.batch;
    let step_seed = args.seed ^ (gan.step as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let ones = Tensor::ones(device, &[n])?;
    let zeros = Tensor::zeros(device, &[n])?;
    let tape = Tape::new();
    let z = tape.input(Tensor::randn(device, &[n, args.nz, 1, 1], step_seed)?);
    let real = tape.input(Tensor::from_vec(device, real, &[n, 3, 32, 32])?);
    let (fake, loss_d, d_real, d_fake) = {
        let mut ctx = Ctx::train(&tape, &mut gan.store, step_seed);
        let fake = gan.generator.forward(&mut ctx, &z)?;
        let on_real = logits(&gan.discriminator, &mut ctx, &real)?;
        // The generated images as constants: no gradient reaches the generator here.
        let detached = tape.constant(fake.value().clone());
        let on_fake = logits(&gan.discriminator, &mut ctx, &detached)?;
        let loss = tape.add(
            &tape.bce_with_logits(&on_real, &ones)?,
            &tape.bce_with_logits(&on_fake, &zeros)?,
        )?;
        let mean_sigmoid = |v: &liandan::autograd::Var| -> Result<f64> {
            let p = v.value().sigmoid()?.to_vec()?;
            Ok(p.iter().map(|&x| x as f64).sum::<f64>() / p.len() as f64)
        };
        (fake, loss, mean_sigmoid(&on_real)?, mean_sigmoid(&on_fake)?)
    };
    let grads = part(tape.backward(&loss_d)?.by_name()?, "discriminator.");
    gan.adam.step(&mut gan.store, &grads, args.lr)?;

    let loss_g = {
        let mut ctx = Ctx::train(&tape, &mut gan.store, step_seed.wrapping_add(1));
        let on_fake = logits(&gan.discriminator, &mut ctx, &fake)?;
        tape.bce_with_logits(&on_fake, &ones)?
    };
    let grads = part(tape.backward(&loss_g)?.by_name()?, "generator.");
    gan.adam.step(&mut gan.store, &grads, args.lr)?;
    gan.step += 1;
    let logged = Logged {
        step: gan.step,
        loss_d: f64::from(loss_d.value().to_scalar()?),
        loss_g: f64::from(loss_g.value().to_scalar()?),
        d_real,
        d_fake,
    };
    if !(logged.loss_d.is_finite() && logged.loss_g.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "training diverged at step {}: losses {} and {}; resume from the last checkpoint \
             with a lower --lr",
            gan.step, logged.loss_d, logged.loss_g
        )));
    }
    Ok(logged)
}

/// The generator's images for `noise` (evaluation mode) as an 8-wide grid, 2× scaled.
fn write_samples(gan: &Gan, noise: &Tensor, path: &Path) -> Result<()> {
    let tape = Tape::no_grad();
    let z = tape.input(noise.clone());
    let images = gan
        .generator
        .forward(&mut Ctx::eval(&tape, &gan.store), &z)?;
    let values: Vec<f32> = images
        .value()
        .to_vec()?
        .iter()
        .map(|v| (v + 1.0) / 2.0)
        .collect();
    let n = noise.shape()[0];
    let (cols, scale, gap) = (8, 2, 2);
    let tile = 32 * scale + gap;
    let mut canvas = Canvas::new(cols * tile, n.div_ceil(cols) * tile);
    for (k, image) in values.chunks_exact(IMAGE_BYTES).enumerate() {
        canvas.rgb_planes(
            ((k % cols) * tile, (k / cols) * tile),
            (32, 32),
            image,
            scale,
        );
    }
    canvas.write_png(path)
}

fn write_losses(out: &Path, log: &[Logged]) -> Result<()> {
    let mut csv = String::from("step,loss_d,loss_g,d_real,d_fake\n");
    for l in log {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            l.step, l.loss_d, l.loss_g, l.d_real, l.d_fake
        ));
    }
    liandan::io::checkpoint::write_atomically(&out.join("losses.csv"), csv.as_bytes())?;
    let series = |f: fn(&Logged) -> f64| log.iter().map(f).collect::<Vec<f64>>();
    let (ld, lg, pr, pf) = (
        series(|l| l.loss_d),
        series(|l| l.loss_g),
        series(|l| l.d_real),
        series(|l| l.d_fake),
    );
    let (blue, orange) = ([40, 90, 220], [230, 120, 20]);
    write_panels(
        out.join("losses.png"),
        &[
            Panel {
                title: "losses",
                x_label: "step",
                y_label: "binary cross-entropy",
                curves: vec![
                    Curve {
                        label: "discriminator",
                        values: &ld,
                        rgb: blue,
                    },
                    Curve {
                        label: "generator",
                        values: &lg,
                        rgb: orange,
                    },
                ],
            },
            Panel {
                title: "discriminator's P(real)",
                x_label: "step",
                y_label: "mean probability",
                curves: vec![
                    Curve {
                        label: "real images",
                        values: &pr,
                        rgb: blue,
                    },
                    Curve {
                        label: "generated",
                        values: &pf,
                        rgb: orange,
                    },
                ],
            },
        ],
    )
}

/// `losses.csv` of an earlier run, up to `step`.
fn read_losses(out: &Path, step: usize) -> Result<Vec<Logged>> {
    let path = out.join("losses.csv");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    let mut log = Vec::new();
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').filter_map(|f| f.parse().ok()).collect();
        if let [s, ld, lg, pr, pf] = v[..]
            && (s as usize) <= step
        {
            log.push(Logged {
                step: s as usize,
                loss_d: ld,
                loss_g: lg,
                d_real: pr,
                d_fake: pf,
            });
        }
    }
    Ok(log)
}

fn run(args: &Args) -> Result<Gan> {
    if args.batch == 0 || args.sample_every == 0 {
        return Err(Error::InvalidArgument(
            "--batch and --sample-every must be positive".into(),
        ));
    }
    let data = Cifar10::load_train(cifar10::locate(args.data.as_deref())?)?;
    let pool: Vec<usize> = match args.class {
        Some(c) if c >= CLASSES.len() => {
            return Err(Error::InvalidArgument(format!(
                "--class {c}: CIFAR-10 has classes 0-9"
            )));
        }
        Some(c) => (0..data.len()).filter(|&i| data.label(i) == c).collect(),
        None => (0..data.len()).collect(),
    };
    let device = Device::new()?;
    let mut gan = build(&device, args)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", args.out.display())))?;
    let checkpoint = args.out.join("checkpoint.safetensors");
    let mut log = Vec::new();
    if args.resume {
        let ckpt = load_checkpoint(&checkpoint)?;
        apply_checkpoint(&ckpt, &mut gan.store, &device, Some(&mut gan.adam))?;
        gan.step = ckpt
            .meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        log = read_losses(&args.out, gan.step)?;
        println!("resumed at step {}", gan.step);
    }
    let what = args
        .class
        .map_or("all classes".to_string(), |c| CLASSES[c].to_string());
    println!(
        "DCGAN width {} on {} ({} images), batch {}, {} parameters, {}",
        args.width,
        what,
        pool.len(),
        args.batch,
        gan.store.num_parameters(),
        device.summary().name
    );
    let fixed_noise = Tensor::randn(&device, &[64, args.nz, 1, 1], args.seed ^ 0xF1)?;
    let (start, first_step) = (std::time::Instant::now(), gan.step);
    while gan.step < args.steps {
        let real = real_batch(&data, &pool, args.batch, args.seed, gan.step);
        let logged = train_step(&mut gan, &device, real, args)?;
        log.push(logged);
        if gan.step % args.sample_every == 0 || gan.step == args.steps {
            let rate = (gan.step - first_step) as f64 / start.elapsed().as_secs_f64();
            println!(
                "step {:5}: loss D {:.3} G {:.3} | D(x) {:.3} D(G(z)) {:.3} | {rate:.2} steps/s",
                gan.step, logged.loss_d, logged.loss_g, logged.d_real, logged.d_fake
            );
            write_samples(&gan, &fixed_noise, &args.out.join("samples.png"))?;
            let kept = args.out.join(format!("samples_{:05}.png", gan.step));
            write_samples(&gan, &fixed_noise, &kept)?;
            write_losses(&args.out, &log)?;
            let meta = BTreeMap::from([("step".to_string(), gan.step.to_string())]);
            save_checkpoint(&checkpoint, &gan.store, Some(&gan.adam), &meta)?;
        }
    }
    Ok(gan)
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_dcgan: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps on tiny synthetic data, then a resumed third: finite losses, the
    /// pictures and the checkpoint written, the step count carried over.
    #[test]
    fn trains_two_steps_and_resumes() {
        let dir = std::env::temp_dir().join(format!("liandan-dcgan-{}", std::process::id()));
        let data = dir.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&data).unwrap();
        let mut rng = Rng::new(3);
        for name in cifar10::TRAIN_FILES {
            let bytes: Vec<u8> = (0..8 * cifar10::RECORD_BYTES)
                .map(|i| {
                    if i % cifar10::RECORD_BYTES == 0 {
                        (i / cifar10::RECORD_BYTES % 10) as u8
                    } else {
                        rng.below(256) as u8
                    }
                })
                .collect();
            std::fs::write(data.join(name), bytes).unwrap();
        }
        let out = dir.join("run");
        let argv = |steps: &str, resume: bool| {
            let mut v = vec![
                "train_dcgan",
                "--data",
                dir.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ];
            v.extend([
                "--width",
                "4",
                "--batch",
                "4",
                "--nz",
                "8",
                "--sample-every",
                "2",
                "--steps",
                steps,
            ]);
            if resume {
                v.push("--resume");
            }
            Args::try_parse_from(v).unwrap()
        };
        let gan = run(&argv("2", false)).unwrap();
        assert_eq!(gan.step, 2);
        for file in [
            "samples.png",
            "samples_00002.png",
            "losses.png",
            "losses.csv",
            "checkpoint.safetensors",
        ] {
            assert!(out.join(file).is_file(), "{file}");
        }
        let gan = run(&argv("3", true)).unwrap();
        assert_eq!(gan.step, 3);
        let log = read_losses(&out, 3).unwrap();
        assert_eq!(log.iter().map(|l| l.step).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(
            log.iter()
                .all(|l| l.loss_d.is_finite() && l.loss_g.is_finite())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
