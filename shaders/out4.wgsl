// How a product kernel stores a lane's row of 8 results (its includer binds `c` as
// array<Out>): two vec4 stores. Software adapters turn every lane-divergent store into a
// loop over the lanes, so this stores 4 times faster than out1.wgsl. Only where the host
// knows every row starts 16-byte aligned and holds all 8 columns.

alias Out = vec4<f32>;

fn store8(at: u32, lo: vec4<f32>, hi: vec4<f32>, valid: u32) {
    c[at / 4u] = lo;
    c[at / 4u + 1u] = hi;
}
