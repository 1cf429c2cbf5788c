//! Kernel correctness: every op against a plain CPU reference in f64, on random shapes
//! (odd sizes included) and seeded random data, with outputs poisoned (NaN) so an element
//! a kernel never writes fails. One binary, so all tests share one device.

mod common;

mod autograd;
mod channels;
mod checkpoint;
mod conv;
mod dist;
mod dropout;
mod elementwise;
mod errors;
mod fuzz;
mod guidelines;
mod layers;
mod linear;
mod loss;
mod matmul;
mod models;
mod norm;
mod optim;
mod pool;
mod reduce;
mod runtime;
mod shaders;
mod softmax;
mod tape_ops;
mod training;
mod windows;
mod zoo;
mod zoo_run;
