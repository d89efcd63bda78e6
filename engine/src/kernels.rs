//! CPU kernels for Q8_0 matrix products: weights and activations both quantized to 8 bits in blocks
//! of 32 with an `f32` scale per block, multiplied in register tiles with AVX-512 VNNI or AVX2
//! (picked at run time), and a portable fallback. Work is split over column ranges on candle's
//! thread pool, so each worker keeps its weights in cache while it walks all activation rows.

/// Values per quantization block.
pub(crate) const BLOCK: usize = 32;
/// Weight rows stored interleaved together, so that a tile of columns is one sequential stream.
pub(crate) const GROUP: usize = 4;
/// Bytes of one block of one group: four `f32` scales, then four rows of 32 `i8`.
const GROUP_BLOCK_BYTES: usize = GROUP * 4 + GROUP * BLOCK;

/// A `rows x cols` weight matrix in 8-bit blocks of 32 with an `f32` scale each. Rows are stored
/// in groups of four, block by block (`[scales; 4][quants; 4 x 32]`), so that the kernels read
/// one sequential stream per tile, which the hardware prefetchers follow.
#[derive(Debug, Clone)]
pub(crate) struct Q8Matrix {
    rows: usize,
    cols: usize,
    data: WeightBytes,
}

/// Weight storage. Large matrices live in 2 MiB-aligned memory marked for transparent huge pages:
/// streaming them then needs far fewer TLB entries, and decoding reads every byte of them for
/// every token. Small ones, or any when that allocation fails, stay in a plain vector.
pub(crate) enum WeightBytes {
    Vec(Vec<u8>),
    Aligned { ptr: std::ptr::NonNull<u8>, len: usize, layout: std::alloc::Layout },
}

// SAFETY: `WeightBytes` owns its allocation exclusively, like a `Box<[u8]>`.
unsafe impl Send for WeightBytes {}
unsafe impl Sync for WeightBytes {}

const HUGE_PAGE: usize = 2 << 20;

impl WeightBytes {
    fn from_vec(bytes: Vec<u8>) -> WeightBytes {
        let len = bytes.len();
        if len < HUGE_PAGE * 3 / 4 {
            return WeightBytes::Vec(bytes);
        }
        let size = len.next_multiple_of(HUGE_PAGE);
        let Ok(layout) = std::alloc::Layout::from_size_align(size, HUGE_PAGE) else {
            return WeightBytes::Vec(bytes);
        };
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            return WeightBytes::Vec(bytes);
        };
        #[cfg(target_os = "linux")]
        // SAFETY: the range is the allocation just made; the advice only affects paging.
        unsafe {
            libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE);
        }
        // SAFETY: the allocation holds at least `len` bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), raw, len) };
        WeightBytes::Aligned { ptr, len, layout }
    }
}

impl Drop for WeightBytes {
    fn drop(&mut self) {
        if let WeightBytes::Aligned { ptr, layout, .. } = self {
            // SAFETY: allocated by `std::alloc::alloc` with this layout in `from_vec`.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), *layout) };
        }
    }
}

impl Clone for WeightBytes {
    fn clone(&self) -> Self {
        WeightBytes::from_vec(self.to_vec())
    }
}

impl std::fmt::Debug for WeightBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeightBytes({} bytes)", self.len())
    }
}

impl std::ops::Deref for WeightBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WeightBytes::Vec(bytes) => bytes,
            // SAFETY: `ptr` points to `len` initialised bytes owned by `self`.
            WeightBytes::Aligned { ptr, len, .. } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
        }
    }
}

/// Activations quantized in the same blocks, one row per token.
pub(crate) struct Q8Rows {
    rows: usize,
    cols: usize,
    qs: Vec<i8>,
    scales: Vec<f32>,
}

impl Q8Matrix {
    /// Whether a matrix of this shape fits the layout.
    pub(crate) fn supports(rows: usize, cols: usize) -> bool {
        rows.is_multiple_of(GROUP) && cols.is_multiple_of(BLOCK) && rows > 0 && cols > 0
    }

    /// Quantizes `rows x cols` values; the shape must be `supports`ed.
    pub(crate) fn quantize(values: &[f32], rows: usize, cols: usize) -> Q8Matrix {
        debug_assert!(Q8Matrix::supports(rows, cols) && values.len() == rows * cols);
        let mut qs = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * cols / BLOCK];
        quantize_into(values, &mut qs, &mut scales);
        Q8Matrix::interleave(&qs, &scales, rows, cols)
    }

    /// Builds a matrix from ggml Q8_0 blocks (an `f16` scale, then 32 `i8`), keeping them exactly.
    pub(crate) fn from_q8_0_blocks(bytes: &[u8], rows: usize, cols: usize) -> Option<Q8Matrix> {
        let blocks = rows * cols / BLOCK;
        if !Q8Matrix::supports(rows, cols) || bytes.len() != blocks * 34 {
            return None;
        }
        let mut qs = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(blocks);
        for block in bytes.chunks_exact(34) {
            scales.push(f16_to_f32(u16::from_le_bytes([block[0], block[1]])));
            qs.extend(block[2..].iter().map(|&b| b as i8));
        }
        Some(Q8Matrix::interleave(&qs, &scales, rows, cols))
    }

    fn interleave(qs: &[i8], scales: &[f32], rows: usize, cols: usize) -> Q8Matrix {
        let blocks = cols / BLOCK;
        let mut data = Vec::with_capacity(rows / GROUP * blocks * GROUP_BLOCK_BYTES);
        for g in 0..rows / GROUP {
            for b in 0..blocks {
                for lane in 0..GROUP {
                    data.extend_from_slice(&scales[(g * GROUP + lane) * blocks + b].to_le_bytes());
                }
                for lane in 0..GROUP {
                    let start = (g * GROUP + lane) * cols + b * BLOCK;
                    data.extend(qs[start..start + BLOCK].iter().map(|&q| q as u8));
                }
            }
        }
        Q8Matrix { rows, cols, data: WeightBytes::from_vec(data) }
    }

    /// Stacks matrices with the same number of columns.
    pub(crate) fn concat(parts: &[Q8Matrix]) -> Q8Matrix {
        let cols = parts.first().map(|p| p.cols).unwrap_or(0);
        let rows = parts.iter().map(|p| p.rows).sum();
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for part in parts {
            data.extend_from_slice(&part.data);
        }
        Q8Matrix { rows, cols, data: WeightBytes::from_vec(data) }
    }

    /// Dequantizes one row into `out` (for embedding lookups).
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let blocks = self.cols / BLOCK;
        let (g, lane) = (row / GROUP, row % GROUP);
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate().take(blocks) {
            let at = (g * blocks + b) * GROUP_BLOCK_BYTES;
            let d = f32::from_le_bytes([
                self.data[at + lane * 4],
                self.data[at + lane * 4 + 1],
                self.data[at + lane * 4 + 2],
                self.data[at + lane * 4 + 3],
            ]);
            let qs = &self.data[at + GROUP * 4 + lane * BLOCK..at + GROUP * 4 + (lane + 1) * BLOCK];
            for (o, &q) in out.iter_mut().zip(qs) {
                *o = f32::from(q as i8) * d;
            }
        }
    }
}

impl Q8Rows {
    /// Quantizes `m` rows of activations.
    pub(crate) fn quantize(values: &[f32], m: usize) -> Q8Rows {
        let cols = values.len() / m.max(1);
        let mut qs = vec![0i8; values.len()];
        let mut scales = vec![0f32; values.len() / BLOCK];
        quantize_into(values, &mut qs, &mut scales);
        Q8Rows { rows: m, cols, qs, scales }
    }
}

fn quantize_into(values: &[f32], qs: &mut [i8], scales: &mut [f32]) {
    for ((x, q), d) in values.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)).zip(scales.iter_mut()) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * inv).round() as i8;
        }
        *d = scale;
    }
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise it.
            let mut e = 127 - 15 + 1;
            let mut m = mantissa;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(value)
}

/// `y = x · wᵀ`: `x` has `m` rows of `w.cols()`, `y` gets `m` rows of `w.rows()`.
pub(crate) fn matmul(x: &Q8Rows, w: &Q8Matrix) -> Vec<f32> {
    let (m, n) = (x.rows, w.rows);
    let mut y = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return y;
    }
    debug_assert_eq!(x.cols, w.cols);
    let kernel = Kernel::detect();
    // Column groups per work item: enough to amortise scheduling, few enough to balance threads.
    let step = if m == 1 { 16 } else { 8 };
    let groups = n / GROUP;
    let items = groups.div_ceil(step);
    let y_ptr = SyncPtr(y.as_mut_ptr());
    let work = |range: std::ops::Range<usize>| {
        for item in range {
            let g0 = item * step;
            let g1 = (g0 + step).min(groups);
            // SAFETY: each work item writes only the columns of groups g0..g1 of `y`, which no
            // other item touches, and `y` outlives the pool call.
            unsafe { kernel.run(x, w, g0, g1, y_ptr.get(), n) };
        }
    };
    if items == 1 {
        work(0..1);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(items, work);
    }
    y
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    fn detect() -> Kernel {
        use std::sync::OnceLock;
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::env::var_os("GLINT_PORTABLE_KERNELS").is_some() {
                    return Kernel::Portable;
                }
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
                    && is_x86_feature_detected!("fma")
                    && std::env::var_os("GLINT_NO_AVX512").is_none()
                {
                    return Kernel::Avx512Vnni;
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    return Kernel::Avx2;
                }
            }
            Kernel::Portable
        })
    }

    /// Computes the columns of row groups `g0..g1` for every row of `y` (row stride `n`).
    ///
    /// # Safety
    /// `y` must point to `x.rows * n` floats, and no other thread may touch those columns.
    unsafe fn run(self, x: &Q8Rows, w: &Q8Matrix, g0: usize, g1: usize, y: *mut f32, n: usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU features were detected at run time.
            Kernel::Avx512Vnni => unsafe { x86::run_vnni(x, w, g0, g1, y, n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { x86::run_avx2(x, w, g0, g1, y, n) },
            Kernel::Portable => {
                for r in 0..x.rows {
                    for c in g0 * GROUP..g1 * GROUP {
                        let v = portable_dot(x, r, w, c);
                        // SAFETY: r < rows and c < n, within the caller's buffer.
                        unsafe { *y.add(r * n + c) = v };
                    }
                }
            }
        }
    }
}

fn portable_dot(x: &Q8Rows, r: usize, w: &Q8Matrix, c: usize) -> f32 {
    let k = x.cols;
    let blocks = k / BLOCK;
    let xq = &x.qs[r * k..(r + 1) * k];
    let mut row = vec![0f32; k];
    w.row_into(c, &mut row);
    let mut sum = 0f32;
    for b in 0..blocks {
        // The weight row was dequantized; recover its integer values and scale exactly.
        let at = ((c / GROUP) * blocks + b) * GROUP_BLOCK_BYTES;
        let lane = c % GROUP;
        let wd = f32::from_le_bytes([
            w.data[at + lane * 4],
            w.data[at + lane * 4 + 1],
            w.data[at + lane * 4 + 2],
            w.data[at + lane * 4 + 3],
        ]);
        let wq = &w.data[at + GROUP * 4 + lane * BLOCK..at + GROUP * 4 + (lane + 1) * BLOCK];
        let mut acc = 0i32;
        for (i, &q) in wq.iter().enumerate() {
            acc += i32::from(xq[b * BLOCK + i]) * i32::from(q as i8);
        }
        sum += acc as f32 * x.scales[r * blocks + b] * wd;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Register-tiled Q8 dot products: `RM` activation rows by `NG` groups of four weight rows per
    //! tile, one 32-byte block at a time; the products of a block are summed in 8 `i32` lanes,
    //! scaled and accumulated in `f32` lanes, with horizontal sums only at the end of a tile.

    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES, Q8Matrix, Q8Rows};

    /// How many blocks ahead of the one being multiplied to prefetch.
    const PREFETCH_BLOCKS: usize = 24;

    macro_rules! tiled_kernel {
        ($name:ident, $tile:ident, $features:literal, $dot:ident, $rm:literal) => {
            /// # Safety
            /// The CPU must have the features; `y` as in `Kernel::run`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(x: &Q8Rows, w: &Q8Matrix, g0: usize, g1: usize, y: *mut f32, n: usize) {
                let m = x.rows;
                let mut g = g0;
                if m == 1 {
                    // One token: two groups at a time for more independent loads in flight.
                    while g + 2 <= g1 {
                        // SAFETY: rows and groups are in bounds by the loop conditions.
                        unsafe { $tile::<1, 2>(x, w, 0, g, y, n) };
                        g += 2;
                    }
                }
                while g < g1 {
                    let mut r = 0;
                    while r + $rm <= m {
                        unsafe { $tile::<$rm, 1>(x, w, r, g, y, n) };
                        r += $rm;
                    }
                    while r < m {
                        unsafe { $tile::<1, 1>(x, w, r, g, y, n) };
                        r += 1;
                    }
                    g += 1;
                }
            }

            /// # Safety
            /// Rows `r..r+RM` and groups `g..g+NG` exist; the CPU has the features.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $tile<const RM: usize, const NG: usize>(
                x: &Q8Rows,
                w: &Q8Matrix,
                r: usize,
                g: usize,
                y: *mut f32,
                n: usize,
            ) {
                let k = x.cols;
                let blocks = k / BLOCK;
                let mut acc = [[[_mm256_setzero_ps(); GROUP]; NG]; RM];
                unsafe {
                    let xq = x.qs.as_ptr().add(r * k);
                    let xs = x.scales.as_ptr().add(r * blocks);
                    let base = w.data.as_ptr();
                    for b in 0..blocks {
                        for h in 0..NG {
                            let p = base.add(((g + h) * blocks + b) * GROUP_BLOCK_BYTES);
                            // Hardware prefetchers stop at page boundaries; ask for the data
                            // far enough ahead to hide memory latency across them.
                            let ahead = p.add(PREFETCH_BLOCKS * GROUP_BLOCK_BYTES) as *const i8;
                            _mm_prefetch::<_MM_HINT_T0>(ahead);
                            _mm_prefetch::<_MM_HINT_T0>(ahead.add(64));
                            _mm_prefetch::<_MM_HINT_T0>(ahead.add(128));
                            let scales = p as *const f32;
                            let mut wv = [_mm256_setzero_si256(); GROUP];
                            let mut wa = [_mm256_setzero_si256(); GROUP];
                            let mut wd = [0f32; GROUP];
                            for j in 0..GROUP {
                                wv[j] = _mm256_loadu_si256(p.add(GROUP * 4 + j * BLOCK) as *const __m256i);
                                wa[j] = _mm256_sign_epi8(wv[j], wv[j]);
                                wd[j] = std::ptr::read_unaligned(scales.add(j));
                            }
                            for i in 0..RM {
                                let xv = _mm256_loadu_si256(xq.add(i * k + b * BLOCK) as *const __m256i);
                                let xd = *xs.add(i * blocks + b);
                                for j in 0..GROUP {
                                    // |w| * (x with w's sign) = x * w, with an unsigned left operand.
                                    let signed = _mm256_sign_epi8(xv, wv[j]);
                                    let sums = $dot(wa[j], signed);
                                    let scale = _mm256_set1_ps(xd * wd[j]);
                                    acc[i][h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc[i][h][j]);
                                }
                            }
                        }
                    }
                    for i in 0..RM {
                        for h in 0..NG {
                            let sums = hsum4(acc[i][h]);
                            _mm_storeu_ps(y.add((r + i) * n + (g + h) * GROUP), sums);
                        }
                    }
                }
            }
        };
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn dot_vnni(unsigned: __m256i, signed: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned, signed)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn dot_avx2(unsigned: __m256i, signed: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(unsigned, signed);
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    /// The horizontal sums of four vectors, as four lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn hsum4(v: [__m256; GROUP]) -> __m128 {
        let a = _mm256_hadd_ps(v[0], v[1]);
        let b = _mm256_hadd_ps(v[2], v[3]);
        let c = _mm256_hadd_ps(a, b);
        _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1))
    }

    tiled_kernel!(run_vnni, tile_vnni, "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", dot_vnni, 4);
    tiled_kernel!(run_avx2, tile_avx2, "avx2,fma", dot_avx2, 2);
}

/// A pointer to an output buffer that workers write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub(crate) *mut f32);
// SAFETY: used only for disjoint writes while the buffer is alive (see `matmul` and
// `model::attention`).
unsafe impl Sync for SyncPtr {}
unsafe impl Send for SyncPtr {}

impl SyncPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_the_float_product() {
        for (m, k, n) in [(1, 64, 12), (5, 96, 16), (9, 576, 64), (1, 576, 4), (3, 32, 8)] {
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let wq = Q8Matrix::quantize(&w, n, k);
            let xq = Q8Rows::quantize(&x, m);
            let y = matmul(&xq, &wq);
            for r in 0..m {
                for c in 0..n {
                    let exact: f32 = (0..k).map(|i| x[r * k + i] * w[c * k + i]).sum();
                    let portable = portable_dot(&xq, r, &wq, c);
                    let got = y[r * n + c];
                    assert!((got - portable).abs() < 1e-4, "{m}x{k}x{n} at {r},{c}: {got} vs {portable}");
                    assert!((got - exact).abs() < 0.02 * (k as f32).sqrt() / 10.0 + 0.01, "{got} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn q8_0_blocks_convert_exactly_and_f16_decodes() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        let mut bytes = Vec::new();
        for r in 0..4u8 {
            bytes.extend([0x00, 0x3c]);
            bytes.extend((0..32).map(|i| (i as i8 - 16 + r as i8) as u8));
        }
        assert!(Q8Matrix::from_q8_0_blocks(&bytes, 1, 128).is_none());
        let m = Q8Matrix::from_q8_0_blocks(&bytes, 4, 32).unwrap();
        let mut row = vec![0f32; 32];
        m.row_into(2, &mut row);
        assert_eq!(row[0], -14.0);
        assert_eq!(row[31], 17.0);
    }
}
