// How a product kernel stores a lane's row of 8 results (its includer binds `c` as
// array<Out>): one float at a time, the columns past the edge left out. out4.wgsl stores
// two vec4s where the host knows every row starts 16-byte aligned and is whole.

alias Out = f32;

fn store8(at: u32, lo: vec4<f32>, hi: vec4<f32>, valid: u32) {
    for (var j = 0u; j < 8u; j++) {
        if j < valid {
            c[at + j] = select(hi[j % 4u], lo[j % 4u], j < 4u);
        }
    }
}
