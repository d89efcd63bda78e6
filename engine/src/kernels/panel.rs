//! The panel layout: weight rows stored sixteen at a time, interleaved four values at a time, so
//! that one 32-byte load holds the same four consecutive values of eight rows. A dot-product
//! instruction over such a load and four activation bytes broadcast to every lane advances eight
//! output columns at once, and a block's scales are applied with one vector multiply per eight
//! columns instead of one scalar multiply and a horizontal sum per column. This is the repacking
//! llama.cpp does for its fastest CPU path, applied here to every format the kernels hold.
//!
//! One block of one panel (16 rows, 32 values each), per `Format`:
//! - `Q8`: 16 `f32` scales, then 8 chunks of 64 bytes; chunk `t` holds, for row `c` and `j` in
//!   0..4, the `i8` value `4t + j` at byte `4c + j`.
//! - `Q4`: 16 `f16` scales, 16 `f16` minimums, then 4 chunks of 64 bytes; byte `4c + j` of chunk `t`
//!   holds value `4t + j` of row `c` in its low nibble and value `16 + 4t + j` in its high nibble.
//! - `Q5`: as `Q4`, with each chunk followed by two `u64` masks of fifth bits (bit `4c + j`): one
//!   for the low nibbles' values, one for the high nibbles'.

use super::{BLOCK, Format, Q8Rows, f16_to_f32, f32_to_f16};

/// Weight rows per panel.
pub(crate) const PANEL: usize = 16;
/// Bytes of a panel block's scales (and minimums) before its values.
const Q8_HEAD: usize = PANEL * 4;
const Q4_HEAD: usize = PANEL * 2 * 2;
/// Bytes of one chunk (four values of each of the 16 rows, or eight for 4-bit values).
const CHUNK: usize = PANEL * 4;
const Q5_CHUNK: usize = CHUNK + 16;

/// Bytes of one block of one panel.
pub(crate) fn block_bytes(format: Format) -> usize {
    match format {
        Format::Q8 => Q8_HEAD + 8 * CHUNK,
        Format::Q4 => Q4_HEAD + 4 * CHUNK,
        Format::Q5 => Q4_HEAD + 4 * Q5_CHUNK,
    }
}

/// One row's block as the converters decode it: `w = d * q + m` with the values `q` (0..=31 for
/// 4- and 5-bit formats, `i8` for `Q8`).
pub(crate) struct RowBlock {
    pub(crate) d: f32,
    pub(crate) m: f32,
    pub(crate) q: [i8; BLOCK],
}

/// Writes one block of a panel from its 16 rows' blocks.
pub(crate) fn write_block(format: Format, rows: &[RowBlock], out: &mut [u8]) {
    debug_assert_eq!(rows.len(), PANEL);
    debug_assert_eq!(out.len(), block_bytes(format));
    match format {
        Format::Q8 => {
            for (c, row) in rows.iter().enumerate() {
                out[c * 4..c * 4 + 4].copy_from_slice(&row.d.to_le_bytes());
            }
            for t in 0..8 {
                for (c, row) in rows.iter().enumerate() {
                    for j in 0..4 {
                        out[Q8_HEAD + t * CHUNK + c * 4 + j] = row.q[4 * t + j] as u8;
                    }
                }
            }
        }
        Format::Q4 | Format::Q5 => {
            let stride = if format == Format::Q5 { Q5_CHUNK } else { CHUNK };
            for (c, row) in rows.iter().enumerate() {
                out[c * 2..c * 2 + 2].copy_from_slice(&f32_to_f16(row.d).to_le_bytes());
                out[PANEL * 2 + c * 2..PANEL * 2 + c * 2 + 2].copy_from_slice(&f32_to_f16(row.m).to_le_bytes());
            }
            for t in 0..4 {
                let chunk = &mut out[Q4_HEAD + t * stride..Q4_HEAD + (t + 1) * stride];
                let (mut low_bits, mut high_bits) = (0u64, 0u64);
                for (c, row) in rows.iter().enumerate() {
                    for j in 0..4 {
                        let (lo, hi) = (row.q[4 * t + j] as u8, row.q[16 + 4 * t + j] as u8);
                        chunk[c * 4 + j] = (lo & 0x0f) | (hi & 0x0f) << 4;
                        low_bits |= u64::from((lo >> 4) & 1) << (c * 4 + j);
                        high_bits |= u64::from((hi >> 4) & 1) << (c * 4 + j);
                    }
                }
                if format == Format::Q5 {
                    chunk[CHUNK..CHUNK + 8].copy_from_slice(&low_bits.to_le_bytes());
                    chunk[CHUNK + 8..CHUNK + 16].copy_from_slice(&high_bits.to_le_bytes());
                }
            }
        }
    }
}

/// Reads row `c` (0..16) of one panel block back: scale, minimum and values.
pub(crate) fn read_block(format: Format, data: &[u8], c: usize) -> (f32, f32, [i8; BLOCK]) {
    let mut q = [0i8; BLOCK];
    match format {
        Format::Q8 => {
            let d = f32::from_le_bytes([data[c * 4], data[c * 4 + 1], data[c * 4 + 2], data[c * 4 + 3]]);
            for t in 0..8 {
                for j in 0..4 {
                    q[4 * t + j] = data[Q8_HEAD + t * CHUNK + c * 4 + j] as i8;
                }
            }
            (d, 0.0, q)
        }
        Format::Q4 | Format::Q5 => {
            let d = f16_to_f32(u16::from_le_bytes([data[c * 2], data[c * 2 + 1]]));
            let m = f16_to_f32(u16::from_le_bytes([data[PANEL * 2 + c * 2], data[PANEL * 2 + c * 2 + 1]]));
            let stride = if format == Format::Q5 { Q5_CHUNK } else { CHUNK };
            for t in 0..4 {
                let chunk = &data[Q4_HEAD + t * stride..Q4_HEAD + (t + 1) * stride];
                let mask = |at: usize| {
                    if format == Format::Q5 {
                        u64::from_le_bytes(chunk[CHUNK + at..CHUNK + at + 8].try_into().expect("8 bytes"))
                    } else {
                        0
                    }
                };
                let (low_bits, high_bits) = (mask(0), mask(8));
                for j in 0..4 {
                    let byte = chunk[c * 4 + j];
                    let bit = |bits: u64| (((bits >> (c * 4 + j)) & 1) as u8) << 4;
                    q[4 * t + j] = ((byte & 0x0f) | bit(low_bits)) as i8;
                    q[16 + 4 * t + j] = ((byte >> 4) | bit(high_bits)) as i8;
                }
            }
            (d, m, q)
        }
    }
}

/// Computes panels `p0..p1` of `y = x · wᵀ` with the VNNI path if `vnni`, the AVX2 path if not.
///
/// # Safety
/// The CPU has the chosen path's features (`Kernel::Avx512Vnni.supported()` or
/// `Kernel::Avx2.supported()`); `w` is a panel matrix that passed `PackedMatrix::check_layout`,
/// `n == w.rows`, `x` passed `matmul_with`'s checks against `w` (`x.cols == w.cols`, `x.rows * cols`
/// values and `x.rows * cols / 32` scales and sums); `p0 <= p1 <= n / 16`; `y` points to
/// `x.rows * n` writable floats, and no other thread touches columns `p0 * 16..p1 * 16` of them.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn run_x86(
    vnni: bool,
    x: &Q8Rows,
    w: &super::PackedMatrix,
    p0: usize,
    p1: usize,
    y: *mut f32,
    n: usize,
) {
    // SAFETY: each function's requirements are this function's, for the format it is picked for.
    unsafe {
        match (vnni, w.format) {
            (true, Format::Q4) => x86::run_vnni::<4>(x, w, p0, p1, y, n),
            (true, Format::Q5) => x86::run_vnni::<5>(x, w, p0, p1, y, n),
            (true, Format::Q8) => x86::run_vnni::<8>(x, w, p0, p1, y, n),
            (false, Format::Q4) => x86::run_avx2::<4>(x, w, p0, p1, y, n),
            (false, Format::Q5) => x86::run_avx2::<5>(x, w, p0, p1, y, n),
            (false, Format::Q8) => x86::run_avx2::<8>(x, w, p0, p1, y, n),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Panel tiles: `RM` activation rows by 16 columns (VNNI, two 8-lane halves) or by 8 columns
    //! (AVX2, one half at a time, for its 16 registers). Per block, integer dot products collect
    //! in `i32` lanes (in `i16` lanes first for AVX2's `maddubs`, as long as they cannot
    //! overflow), then one conversion and one fused multiply-add per row and eight columns apply
    //! the weight scales times the activation scale, and a second one the minimums.

    use std::arch::x86_64::*;

    use super::{CHUNK, PANEL, Q4_HEAD, Q5_CHUNK, Q8_HEAD, block_bytes};
    use crate::kernels::x86::bytes_from_bits;
    use crate::kernels::{BLOCK, Format, PackedMatrix, Q8Rows};

    /// How far ahead of the block being multiplied to prefetch, in bytes.
    const PREFETCH_BYTES: usize = 2048;

    const fn format_of(f: u8) -> Format {
        match f {
            4 => Format::Q4,
            5 => Format::Q5,
            _ => Format::Q8,
        }
    }

    macro_rules! run_rows {
        ($name:ident, $tile:ident, $features:literal, $rm:literal, $halves:literal) => {
            /// # Safety
            /// As `super::run_x86`, with `w` in the format `F` names; the CPU has the features.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name<const F: u8>(
                x: &Q8Rows,
                w: &PackedMatrix,
                p0: usize,
                p1: usize,
                y: *mut f32,
                n: usize,
            ) {
                let m = x.rows;
                let mut r = 0;
                // Row tiles outside, panels inside: a tile's activations stay in L1 while it
                // meets every panel of the work item, whose weights stay in L2.
                while r < m {
                    // Full tiles, then the rest in the fewest tiles the kernel has shapes for.
                    let rows = match m - r {
                        left if left >= $rm => $rm,
                        left if $rm > 6 && left >= 6 => 6,
                        left if left >= 4 => 4,
                        left => left,
                    };
                    // The tile below has exactly `rows` rows: one of the shapes matched, or `RM`.
                    assert!(rows == $rm || matches!(rows, 1 | 2 | 3 | 4 | 6), "no tile of {rows} rows");
                    for p in p0..p1 {
                        for h in (0..2).step_by($halves) {
                            // SAFETY: rows `r..r + rows` exist (`rows <= m - r`) and the tile has
                            // `rows` rows (asserted above); panel `p < p1 <= n / 16` exists and its
                            // columns are the caller's; half `h < 2`; features, format and layout
                            // as this function requires.
                            unsafe {
                                match rows {
                                    1 => $tile::<1, F>(x, w, r, p, h, y, n),
                                    2 => $tile::<2, F>(x, w, r, p, h, y, n),
                                    3 => $tile::<3, F>(x, w, r, p, h, y, n),
                                    4 => $tile::<4, F>(x, w, r, p, h, y, n),
                                    6 => $tile::<6, F>(x, w, r, p, h, y, n),
                                    _ => $tile::<$rm, F>(x, w, r, p, h, y, n),
                                }
                            }
                        }
                    }
                    r += rows;
                }
            }
        };
    }

    run_rows!(run_vnni, tile_vnni, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", 8, 2);
    run_rows!(run_avx2, tile_avx2, "avx2,fma,f16c", 4, 1);

    /// Four activation bytes broadcast to every 32-bit lane.
    ///
    /// # Safety
    /// `p` points to four readable bytes (any alignment); the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn broadcast4(p: *const i8) -> __m256i {
        // SAFETY: the caller passes a pointer to four readable bytes; the read is unaligned.
        _mm256_set1_epi32(unsafe { std::ptr::read_unaligned(p as *const i32) })
    }

    /// The weight scales and minimums of half `h` of a panel block, as `f32` lanes.
    ///
    /// # Safety
    /// `block` points to a whole panel block of the format `F` names; `h < 2`; the CPU has AVX2
    /// and F16C.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn scales<const F: u8>(block: *const u8, h: usize) -> (__m256, __m256) {
        // SAFETY: with `h < 2` the unaligned reads are 8 `f32` at bytes `32h..32h + 32` of the
        // `Q8_HEAD` (64) bytes of scales, or 8 `f16` at bytes `16h..16h + 16` of the scales and of
        // the minimums (bytes 32..64) of the `Q4_HEAD` (64) bytes; all inside the block.
        unsafe {
            if F == 8 {
                (_mm256_loadu_ps((block as *const f32).add(h * 8)), _mm256_setzero_ps())
            } else {
                let d = _mm256_cvtph_ps(_mm_loadu_si128(block.add(h * 16) as *const __m128i));
                let m = _mm256_cvtph_ps(_mm_loadu_si128(block.add(PANEL * 2 + h * 16) as *const __m128i));
                (d, m)
            }
        }
    }

    /// The 4- or 5-bit values of half `h` of chunk `t`: the low nibbles' quad and the high's.
    ///
    /// # Safety
    /// `block` points to a whole panel block of format `F` (4 or 5); `t < 4`; `h < 2`; the CPU
    /// has AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn nibbles<const F: u8>(block: *const u8, t: usize, h: usize) -> (__m256i, __m256i) {
        let stride = if F == 5 { Q5_CHUNK } else { CHUNK };
        // SAFETY: chunk `t < 4` starts at `Q4_HEAD + t * stride` and holds `stride` bytes, the
        // last chunk ending at the block's end (`block_bytes`). The unaligned reads stay in the
        // chunk: 32 bytes at `32h` (of its 64 bytes of nibbles), and for Q5 the four bytes of each
        // fifth-bit mask at `CHUNK + 4h` and `CHUNK + 8 + 4h` (of its 16 bytes of masks).
        unsafe {
            let chunk = block.add(Q4_HEAD + t * stride);
            let raw = _mm256_loadu_si256(chunk.add(h * 32) as *const __m256i);
            let low = _mm256_set1_epi8(0x0f);
            let mut lo = _mm256_and_si256(raw, low);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
            if F == 5 {
                let fifth = _mm256_set1_epi8(0x10);
                let bits = |at: usize| std::ptr::read_unaligned(chunk.add(CHUNK + at + h * 4) as *const u32);
                lo = _mm256_or_si256(lo, _mm256_and_si256(bytes_from_bits(bits(0)), fifth));
                hi = _mm256_or_si256(hi, _mm256_and_si256(bytes_from_bits(bits(8)), fifth));
            }
            (lo, hi)
        }
    }

    /// # Safety
    /// Rows `r..r+RM` of `x` and panel `p` of `w` exist, and the caller owns the panel's columns
    /// of `y`; `w` is in the format `F` names; the rest as `super::run_x86`; the CPU has the
    /// features.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn tile_vnni<const RM: usize, const F: u8>(
        x: &Q8Rows,
        w: &PackedMatrix,
        r: usize,
        p: usize,
        _h: usize,
        y: *mut f32,
        n: usize,
    ) {
        let k = x.cols;
        let blocks = k / BLOCK;
        let bytes = block_bytes(format_of(F));
        // One token has too few independent sums to hide the dot products' latency: give it two
        // accumulators then.
        let second = if RM == 1 { 1 } else { 0 };
        let mut acc = [_mm512_setzero_ps(); RM];
        // SAFETY: `x` holds `x.rows * k` values and `x.rows * blocks` scales and sums (`run_x86`'s
        // contract), so with `r + RM <= x.rows`, `i < RM` and `b < blocks`, the four-byte reads at
        // `xq + i * k + b * 32 + at` (`at <= 28`) stay in row `r + i`, and the `f32` reads at
        // `xs`/`xsum + i * blocks + b` are aligned elements of `x.scales` and `x.sums`. `w.data`
        // holds `n / 16 * blocks` blocks of `bytes` (`check_layout`), so with `p < n / 16` the
        // panel and each of its blocks `b < blocks` are inside it. Within a block every unaligned
        // load ends by its end: Q8 chunks of 64 bytes at `Q8_HEAD + 64t` (`t < 8`, up to 576),
        // 4- and 5-bit chunks of 64 bytes at `Q4_HEAD + t * stride` (`t < 4`) with Q5's masks at
        // `+64` and `+72` (up to 384), 64 bytes of `f32` scales or 32 bytes each of `f16` scales
        // and minimums at 0 and 32. The prefetch addresses may lie past the end of `w.data`, so
        // they are computed with `wrapping_add`, and a prefetch never faults. The stores write 16
        // floats of row `r + i` at columns `p * 16..p * 16 + 16 <= n`, the caller's. Every
        // intrinsic needs only the features enabled here.
        unsafe {
            let xq = x.qs.as_ptr().add(r * k);
            let xs = x.scales.as_ptr().add(r * blocks);
            let xsum = x.sums.as_ptr().add(r * blocks);
            let panel = w.data.as_ptr().add(p * blocks * bytes);
            let low = _mm512_set1_epi8(0x0f);
            let fifth = _mm512_set1_epi8(0x10);
            for b in 0..blocks {
                let block = panel.add(b * bytes);
                _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(PREFETCH_BYTES) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(PREFETCH_BYTES + 64) as *const i8);
                let mut sums = [[_mm512_setzero_si512(); 2]; RM];
                let x4 = |i: usize, at: usize| {
                    _mm512_set1_epi32(std::ptr::read_unaligned(xq.add(i * k + b * BLOCK + at) as *const i32))
                };
                if F == 8 {
                    for t in 0..8 {
                        let wv = _mm512_loadu_si512(block.add(Q8_HEAD + t * CHUNK) as *const __m512i);
                        let wa = _mm512_abs_epi8(wv);
                        let negative = _mm512_movepi8_mask(wv);
                        let slot = if t % 2 == 1 { second } else { 0 };
                        for (i, sums) in sums.iter_mut().enumerate() {
                            // |w| * (x with w's sign) = x * w, with an unsigned left operand.
                            let xv = x4(i, 4 * t);
                            let signed = _mm512_mask_sub_epi8(xv, negative, _mm512_setzero_si512(), xv);
                            sums[slot] = _mm512_dpbusd_epi32(sums[slot], wa, signed);
                        }
                    }
                } else {
                    let stride = if F == 5 { Q5_CHUNK } else { CHUNK };
                    for t in 0..4 {
                        let chunk = block.add(Q4_HEAD + t * stride);
                        let raw = _mm512_loadu_si512(chunk as *const __m512i);
                        let mut lo = _mm512_and_si512(raw, low);
                        let mut hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
                        if F == 5 {
                            let bits = |at: usize| {
                                _cvtu64_mask64(std::ptr::read_unaligned(chunk.add(CHUNK + at) as *const u64))
                            };
                            lo = _mm512_mask_add_epi8(lo, bits(0), lo, fifth);
                            hi = _mm512_mask_add_epi8(hi, bits(8), hi, fifth);
                        }
                        for (i, sums) in sums.iter_mut().enumerate() {
                            sums[0] = _mm512_dpbusd_epi32(sums[0], lo, x4(i, 4 * t));
                            sums[second] = _mm512_dpbusd_epi32(sums[second], hi, x4(i, 16 + 4 * t));
                        }
                    }
                }
                let (d, mins) = if F == 8 {
                    (_mm512_loadu_ps(block as *const f32), _mm512_setzero_ps())
                } else {
                    (
                        _mm512_cvtph_ps(_mm256_loadu_si256(block as *const __m256i)),
                        _mm512_cvtph_ps(_mm256_loadu_si256(block.add(PANEL * 2) as *const __m256i)),
                    )
                };
                for (i, (acc, sums)) in acc.iter_mut().zip(&sums).enumerate() {
                    let s = if RM == 1 { _mm512_add_epi32(sums[0], sums[1]) } else { sums[0] };
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(*xs.add(i * blocks + b)));
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, *acc);
                    if F != 8 {
                        *acc = _mm512_fmadd_ps(mins, _mm512_set1_ps(*xsum.add(i * blocks + b)), *acc);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(y.add((r + i) * n + p * PANEL), *acc);
            }
        }
    }

    /// # Safety
    /// Rows `r..r+RM` of `x`, panel `p` of `w` and half `h < 2` exist, and the caller owns that
    /// half's columns of `y`; `w` is in the format `F` names; the rest as `super::run_x86`; the CPU
    /// has the features.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn tile_avx2<const RM: usize, const F: u8>(
        x: &Q8Rows,
        w: &PackedMatrix,
        r: usize,
        p: usize,
        h: usize,
        y: *mut f32,
        n: usize,
    ) {
        let k = x.cols;
        let blocks = k / BLOCK;
        let bytes = block_bytes(format_of(F));
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); RM];
        // SAFETY: the activation reads and the panel and block pointers as in `tile_vnni`. Within
        // a block the unaligned loads end by its end: Q8 chunks read 32 bytes at
        // `Q8_HEAD + 64t + 32h` (`t < 8`, `h < 2`, up to 576); `nibbles` and `scales` get a whole
        // block of format `F`, `t < 4` and `h < 2`, as they require. The prefetch uses
        // `wrapping_add` as there; the stores write 8 floats of row `r + i` at columns
        // `p * 16 + 8h..+8 <= n`, the caller's. Every intrinsic needs only the features enabled
        // here.
        unsafe {
            let xq = x.qs.as_ptr().add(r * k);
            let xs = x.scales.as_ptr().add(r * blocks);
            let xsum = x.sums.as_ptr().add(r * blocks);
            let panel = w.data.as_ptr().add(p * blocks * bytes);
            for b in 0..blocks {
                let block = panel.add(b * bytes);
                _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(PREFETCH_BYTES) as *const i8);
                let mut sums = [_mm256_setzero_si256(); RM];
                if F == 8 {
                    for t in 0..8 {
                        let wv = _mm256_loadu_si256(block.add(Q8_HEAD + t * CHUNK + h * 32) as *const __m256i);
                        let wa = _mm256_sign_epi8(wv, wv);
                        for (i, sum) in sums.iter_mut().enumerate() {
                            let xv = broadcast4(xq.add(i * k + b * BLOCK + 4 * t));
                            // Pairs of 8-bit products reach 2 * 127 * 127: widen at once.
                            let pairs = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xv, wv));
                            *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
                        }
                    }
                } else {
                    // 16-bit lanes hold the sum of 8 pairs of 4-bit products (at most
                    // 8 * 2 * 15 * 127 = 30,480) but only 4 of 5-bit ones (31,496).
                    let mut short = [_mm256_setzero_si256(); RM];
                    for t in 0..4 {
                        let (lo, hi) = nibbles::<F>(block, t, h);
                        for (i, short) in short.iter_mut().enumerate() {
                            let xl = broadcast4(xq.add(i * k + b * BLOCK + 4 * t));
                            let xh = broadcast4(xq.add(i * k + b * BLOCK + 16 + 4 * t));
                            let pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh));
                            *short = _mm256_add_epi16(*short, pairs);
                        }
                        if F == 5 || t == 3 {
                            for (sum, short) in sums.iter_mut().zip(short.iter_mut()) {
                                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(*short, ones));
                                *short = _mm256_setzero_si256();
                            }
                        }
                    }
                }
                let (d, mins) = scales::<F>(block, h);
                for i in 0..RM {
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(*xs.add(i * blocks + b)));
                    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[i]), scale, acc[i]);
                    if F != 8 {
                        acc[i] = _mm256_fmadd_ps(mins, _mm256_set1_ps(*xsum.add(i * blocks + b)), acc[i]);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(y.add((r + i) * n + p * PANEL + h * 8), *acc);
            }
        }
    }
}
