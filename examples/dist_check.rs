//! Checks the MPI communicator under `mpirun` (`make test-dist` runs it on 2 and 3
//! ranks): all-reduce (sum and mean), broadcast and barrier against the values every
//! rank can work out, bitwise equal on every rank; and with `--fail-rank R` that rank
//! exits mid-run, so the job must end with an error rather than hang.
//!
//! ```text
//! cargo build --release --features mpi --example dist_check
//! mpirun -np 3 target/release/examples/dist_check
//! ```

use std::process::ExitCode;

use liandan::dist::{Communicator, MpiComm};
use liandan::{Error, Result};

fn check(what: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Distributed(format!("{what}: wrong result")))
    }
}

fn run() -> Result<()> {
    let fail_rank: Option<usize> = std::env::args()
        .skip_while(|a| a != "--fail-rank")
        .nth(1)
        .and_then(|v| v.parse().ok());
    let mut comm = MpiComm::init()?;
    let (rank, size) = (comm.rank(), comm.size());
    let n = size as f32;
    let ranks_sum = (0..size).sum::<usize>() as f32;

    let mut sum = vec![rank as f32, 1.0, 0.1 * (rank + 1) as f32];
    comm.all_reduce_sum(&mut sum)?;
    check("all_reduce_sum", sum[0] == ranks_sum && sum[1] == n)?;
    let mut mean = vec![2.0 * rank as f32; 5];
    comm.all_reduce_mean(&mut mean)?;
    check(
        "all_reduce_mean",
        mean.iter().all(|&m| (m - 2.0 * ranks_sum / n).abs() < 1e-6),
    )?;
    let mut cast = vec![rank as f32 + 10.0; 4];
    comm.broadcast(&mut cast, size - 1)?;
    check("broadcast", cast == vec![size as f32 + 9.0; 4])?;
    comm.barrier()?;
    // Every rank holds the same bits: rank 0's, compared on every rank.
    let mut bits: Vec<f32> = sum.clone();
    comm.broadcast(&mut bits, 0)?;
    check(
        "bitwise equal sums",
        bits.iter()
            .zip(&sum)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
    )?;
    for step in 0..100 {
        if Some(rank) == fail_rank && step == 50 {
            eprintln!("dist_check: rank {rank} exits at step {step} (asked to)");
            std::process::exit(3);
        }
        let mut v = [(rank * step) as f32];
        comm.all_reduce_sum(&mut v)?;
        check("repeated all_reduce_sum", v[0] == (step as f32) * ranks_sum)?;
    }
    println!("dist_check: rank {rank} of {size}: all collectives right");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dist_check: {e}");
            ExitCode::FAILURE
        }
    }
}
