//! Ranks as threads of one process: a box with several GPUs and no MPI (one adapter per
//! rank), or one adapter shared, as in the tests. The collectives meet in shared memory:
//! each rank deposits its slice, the last to arrive combines them (a sum in rank order,
//! so every rank gets the same bits) and wakes the others, who copy the result out.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Communicator;
use crate::error::{Error, Result};

/// The communicators of a group of `size` ranks in one process, rank 0 first, each to
/// be moved to its own thread. A collective waits at most `timeout` for the other ranks,
/// then fails naming those that never came.
pub fn local_group(size: usize, timeout: Duration) -> Result<Vec<LocalComm>> {
    if size == 0 {
        return Err(Error::InvalidArgument(
            "a local group needs at least 1 rank".into(),
        ));
    }
    let shared = Arc::new(Shared {
        size,
        timeout,
        state: Mutex::new(State {
            generation: 0,
            arrived: vec![false; size],
            round: None,
            slots: vec![Vec::new(); size],
            result: Arc::new(Vec::new()),
            broken: None,
        }),
        wake: Condvar::new(),
    });
    Ok((0..size)
        .map(|rank| LocalComm {
            rank,
            shared: shared.clone(),
        })
        .collect())
}

/// One rank's end of a [`local_group`]. Dropping it (its thread returning or panicking)
/// makes every collective the others call from then on fail, naming this rank.
pub struct LocalComm {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    timeout: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

/// A collective and its slice length: every rank of a round must call the same.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Sum(usize),
    Broadcast { len: usize, root: usize },
    Barrier,
}

struct State {
    /// Rounds completed so far.
    generation: u64,
    arrived: Vec<bool>,
    /// The collective of the round in progress, and the rank that began it.
    round: Option<(Op, usize)>,
    slots: Vec<Vec<f32>>,
    /// What the last completed round produced.
    result: Arc<Vec<f32>>,
    /// Why the group can no longer meet.
    broken: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A rank that panicked holding the lock left the state consistent (nothing in
        // here panics mid-update); the others go on and report it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LocalComm {
    /// Runs one collective: deposits `data`, waits for the round to complete, copies the
    /// result into `data`.
    fn collective(&mut self, op: Op, data: &mut [f32]) -> Result<()> {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if let Some(why) = &state.broken {
            return Err(Error::Distributed(why.clone()));
        }
        match state.round {
            Some((other, first)) if other != op => {
                let why = format!(
                    "rank {} called {op:?} while rank {first} called {other:?}: every rank \
                     must run the same collectives in the same order",
                    self.rank
                );
                state.broken = Some(why.clone());
                shared.wake.notify_all();
                return Err(Error::Distributed(why));
            }
            Some(_) => {}
            None => state.round = Some((op, self.rank)),
        }
        let keep = match op {
            Op::Sum(_) => true,
            Op::Broadcast { root, .. } => root == self.rank,
            Op::Barrier => false,
        };
        if keep {
            state.slots[self.rank] = data.to_vec();
        }
        state.arrived[self.rank] = true;
        let generation = state.generation;
        if state.arrived.iter().all(|&a| a) {
            let result = combine(op, &mut state.slots);
            state.result = Arc::new(result);
            state.arrived.iter_mut().for_each(|a| *a = false);
            state.round = None;
            state.generation += 1;
            shared.wake.notify_all();
        } else {
            let deadline = Instant::now() + shared.timeout;
            while state.generation == generation {
                if let Some(why) = &state.broken {
                    return Err(Error::Distributed(why.clone()));
                }
                let now = Instant::now();
                if now >= deadline {
                    let missing: Vec<usize> =
                        (0..shared.size).filter(|&r| !state.arrived[r]).collect();
                    let why = format!(
                        "rank {} waited {:.1} s in {op:?} for rank(s) {missing:?}, which never \
                         came",
                        self.rank,
                        shared.timeout.as_secs_f64()
                    );
                    state.broken = Some(why.clone());
                    shared.wake.notify_all();
                    return Err(Error::Distributed(why));
                }
                state = shared
                    .wake
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        if op != Op::Barrier {
            data.copy_from_slice(&state.result);
        }
        Ok(())
    }
}

/// The result of a completed round, the slots emptied.
fn combine(op: Op, slots: &mut [Vec<f32>]) -> Vec<f32> {
    match op {
        Op::Sum(_) => {
            let mut sum = std::mem::take(&mut slots[0]);
            for slot in &mut slots[1..] {
                for (s, v) in sum.iter_mut().zip(slot.iter()) {
                    *s += v;
                }
                slot.clear();
            }
            sum
        }
        Op::Broadcast { root, .. } => std::mem::take(&mut slots[root]),
        Op::Barrier => Vec::new(),
    }
}

impl Communicator for LocalComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        self.collective(Op::Sum(data.len()), data)
    }

    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        if root >= self.shared.size {
            return Err(Error::InvalidArgument(format!(
                "broadcast from rank {root} in a group of {}",
                self.shared.size
            )));
        }
        let len = data.len();
        self.collective(Op::Broadcast { len, root }, data)
    }

    fn barrier(&mut self) -> Result<()> {
        self.collective(Op::Barrier, &mut [])
    }
}

impl Drop for LocalComm {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.broken.is_none() {
            let how = if std::thread::panicking() {
                "panicked"
            } else {
                "stopped"
            };
            state.broken = Some(format!(
                "rank {} left the group (its thread {how}); the group cannot meet again",
                self.rank
            ));
        }
        self.shared.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f(rank, comm)` on every rank of a new group, each on its own thread.
    fn on_ranks<T: Send + 'static>(
        size: usize,
        timeout: Duration,
        f: impl Fn(usize, LocalComm) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let f = Arc::new(f);
        let comms = local_group(size, timeout).unwrap();
        let threads: Vec<_> = comms
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let f = f.clone();
                std::thread::spawn(move || f(rank, comm))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn all_reduce_broadcast_and_barrier_on_2_and_3_ranks() {
        for size in [1, 2, 3] {
            let results = on_ranks(size, LONG, move |rank, mut comm| {
                assert_eq!((comm.rank(), comm.size()), (rank, size));
                let mut sum = vec![rank as f32, 1.0, 0.1 * (rank + 1) as f32];
                comm.all_reduce_sum(&mut sum).unwrap();
                let mut mean = vec![2.0 * rank as f32; 5];
                comm.all_reduce_mean(&mut mean).unwrap();
                let mut cast = vec![rank as f32 + 10.0; 4];
                comm.broadcast(&mut cast, size - 1).unwrap();
                comm.barrier().unwrap();
                // Many rounds in a row: no rank runs ahead into a round not yet combined.
                let mut total = 0.0;
                for i in 0..200 {
                    let mut v = [(rank * i) as f32];
                    comm.all_reduce_sum(&mut v).unwrap();
                    total += v[0];
                }
                (sum, mean, cast, total)
            });
            let n = size as f32;
            let ranks_sum = (0..size).sum::<usize>() as f32;
            let tenths: f32 = (1..=size).map(|r| 0.1 * r as f32).sum();
            for (sum, mean, cast, total) in &results {
                assert_eq!(sum[..2], [ranks_sum, n]);
                assert!((sum[2] - tenths).abs() < 1e-6);
                assert!(mean.iter().all(|&m| (m - 2.0 * ranks_sum / n).abs() < 1e-6));
                assert_eq!(cast, &vec![size as f32 - 1.0 + 10.0; 4]);
                let want: f32 = (0..200).map(|i| (i * ranks_sum as usize) as f32).sum();
                assert_eq!(*total, want);
            }
            // Every rank got the same bits.
            for r in &results[1..] {
                assert_eq!(
                    r.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    results[0].0.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn a_rank_that_leaves_fails_the_others_naming_it() {
        let start = Instant::now();
        let results = on_ranks(3, LONG, |rank, mut comm| {
            let mut v = [1.0f32];
            comm.all_reduce_sum(&mut v).unwrap();
            if rank == 1 {
                return Ok(()); // leaves: its communicator is dropped
            }
            comm.all_reduce_sum(&mut v)
        });
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the others waited it out"
        );
        for (rank, r) in results.iter().enumerate() {
            if rank == 1 {
                continue;
            }
            match r {
                Err(Error::Distributed(why)) => assert!(why.contains("rank 1"), "{why}"),
                other => panic!("rank {rank}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_rank_that_stalls_times_the_others_out_naming_it() {
        let results = on_ranks(2, Duration::from_millis(300), |rank, mut comm| {
            if rank == 0 {
                std::thread::sleep(Duration::from_millis(1500));
                return Ok(());
            }
            comm.barrier()
        });
        match &results[1] {
            Err(Error::Distributed(why)) => assert!(why.contains("[0]"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mismatched_collectives_are_errors() {
        let results = on_ranks(2, LONG, |rank, mut comm| {
            let mut v = vec![0.0f32; 2 + rank];
            comm.all_reduce_sum(&mut v)
        });
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(Error::Distributed(_))))
        );
        let mut comms = local_group(2, LONG).unwrap();
        assert!(comms[0].broadcast(&mut [1.0], 2).is_err());
        assert!(local_group(0, LONG).is_err());
    }
}
