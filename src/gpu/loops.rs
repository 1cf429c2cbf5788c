//! The loop budget: how many loop iterations one kernel invocation may run.
//!
//! Mesa's llvmpipe (lavapipe, the software Vulkan driver) gives every invocation one
//! counter of 65,535 loop iterations, shared by all the loops it runs (nested, one after
//! another, in called functions), and when it runs out the loops simply stop: no error,
//! just wrong numbers. Measured (2026-11-30): two loops of 40,000 iterations each ran
//! 40,000 and 25,534 times; loops of 300 × 300 nested ran 65,101 inner iterations.
//! Real GPUs have no such cap, but they want the same shape of work: an invocation that
//! loops over millions of elements leaves the rest of the GPU idle.
//!
//! What counts, measured the same way: a loop the compiler unrolls costs nothing (loops
//! with a constant or override-constant bound of up to 32 iterations, nested ones too,
//! were unrolled); any other loop costs its iterations plus one each time it runs (a
//! constant 64-iteration loop cost 65, `for (h = 32; h > 0; h /= 2)` cost 7).
//!
//! So every launch states the most loop iterations one of its invocations can run (its
//! *trips*, counted as above, erring high), and
//! [`crate::Device`] refuses a launch past the device's budget with an `Err` rather than
//! let it run short. The ops keep within the budget by splitting long loops: split-K
//! products, reductions in segments combined by a second pass, rows processed in column
//! ranges. Nothing in liandan loops over an input-sized range in one invocation.

/// lavapipe's cap on loop iterations per invocation (Mesa's `LP_MAX_TGSI_LOOP_ITERATIONS`).
pub const LOOP_CAP: u64 = 65_535;

/// The default budget: an eighth of [`LOOP_CAP`], so a trip count that underestimates
/// what the driver counts (a loop the compiler did not unroll, a `continue` that costs an
/// iteration) by a few times still stays below the cap.
pub const DEFAULT_LOOP_BUDGET: u64 = 8_192;

/// The smallest budget a device accepts: every kernel's unsplittable part (one output
/// column, one window row, the fixed small loops) fits in it. Tests run whole sweeps at
/// this budget, so every split path runs on small shapes.
pub const MIN_LOOP_BUDGET: u64 = 256;
