//! CPU kernels for quantized matrix products: weights in 8-, 5- or 4-bit blocks of 32 (see
//! `Format`; `convert` repacks GGUF blocks into them) and activations quantized to 8 bits,
//! multiplied in register tiles with AVX-512 VNNI or AVX2 (picked at run time), and a portable
//! fallback. Work is split over column ranges on candle's thread pool, so each worker keeps its
//! weights in cache while it walks all activation rows.
//!
//! Soundness rests on three things, checked where they are established: a `PackedMatrix` holds
//! exactly the bytes its shape and layout call for (`PackedMatrix::check_layout`, asserted by
//! `matmul`), activations hold `rows x cols` values with one scale and sum per block (asserted by
//! `matmul`), and a SIMD kernel runs only where `Kernel::supported` found every feature its
//! `target_feature` list enables. Every `unsafe` block says which of these it relies on.

#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod convert;
mod panel;

pub(crate) use convert::Source;

/// Values per quantization block.
pub(crate) const BLOCK: usize = 32;
/// Weight rows stored interleaved together, so that a tile of columns is one sequential stream.
pub(crate) const GROUP: usize = 4;
/// Bytes of one block of one group in `Format::Q8`: four `f32` scales, then four rows of 32 `i8`.
const GROUP_BLOCK_BYTES: usize = GROUP * 4 + GROUP * BLOCK;
/// Bytes of one block of one group in `Format::Q4`: four `f16` scales, four `f16` minimums, then
/// four rows of 16 bytes holding 32 nibbles (ggml Q4_1 order: low nibbles first).
const Q4_GROUP_BLOCK_BYTES: usize = GROUP * 2 + GROUP * 2 + GROUP * BLOCK / 2;
/// Bytes of one block of one group in `Format::Q5`: four `f16` scales, four `f16` minimums, four
/// `u32` masks of fifth bits (bit `i` for value `i`), then the nibbles as in `Format::Q4`.
const Q5_GROUP_BLOCK_BYTES: usize = GROUP * 2 + GROUP * 2 + GROUP * 4 + GROUP * BLOCK / 2;

/// How a packed matrix stores its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `w = d * q`, `q` in -127..=127 (ggml Q8_0 with an `f32` scale).
    Q8,
    /// `w = d * q + m`, `q` in 0..=15 (ggml Q4_1 kept exactly; Q4_0 and Q4_K fit it too).
    Q4,
    /// `w = d * q + m`, `q` in 0..=31 (ggml Q5_1 kept exactly; Q5_0 and Q5_K fit it too). Decoding
    /// reads 24 bytes per 32 weights instead of Q8's 36.
    Q5,
}

impl Format {
    /// Bytes of one block of one group of rows (four rows, or a panel of 16).
    fn block_bytes(self, panel: bool) -> usize {
        if panel { panel::block_bytes(self) } else { self.group_block_bytes() }
    }

    fn group_block_bytes(self) -> usize {
        match self {
            Format::Q8 => GROUP_BLOCK_BYTES,
            Format::Q4 => Q4_GROUP_BLOCK_BYTES,
            Format::Q5 => Q5_GROUP_BLOCK_BYTES,
        }
    }
}

/// A `rows x cols` weight matrix in 8-bit blocks of 32 with an `f32` scale each. Rows are stored
/// in groups of four, block by block (`[scales; 4][quants; 4 x 32]`), so that the kernels read
/// one sequential stream per tile, which the hardware prefetchers follow.
#[derive(Debug, Clone)]
pub(crate) struct PackedMatrix {
    rows: usize,
    cols: usize,
    format: Format,
    /// Rows stored in panels of 16 (`panel`'s layout) rather than in groups of four.
    panel: bool,
    data: WeightBytes,
}

/// Weight storage. Large matrices live in 2 MiB-aligned memory marked for transparent huge pages:
/// streaming them then needs far fewer TLB entries, and decoding reads every byte of them for
/// every token. Small ones, or any when that allocation fails, stay in a plain vector.
pub(crate) enum WeightBytes {
    Vec(Vec<u8>),
    Aligned {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
        layout: std::alloc::Layout,
    },
    /// An anonymous memory mapping of `len` bytes (Linux).
    #[cfg(target_os = "linux")]
    Mapped {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
    },
    /// A private, copy-on-write mapping of packed weights cached on disk (`weight_cache`).
    File(memmap2::MmapMut),
}

// SAFETY: `WeightBytes` owns its allocation exclusively, like a `Box<[u8]>`, so moving it to
// another thread moves the only access to it.
unsafe impl Send for WeightBytes {}
// SAFETY: shared references only read the bytes (mutation needs `&mut`, through `DerefMut`), and
// there is no interior mutability.
unsafe impl Sync for WeightBytes {}

const HUGE_PAGE: usize = 2 << 20;

impl WeightBytes {
    fn from_vec(bytes: Vec<u8>) -> WeightBytes {
        let len = bytes.len();
        if len < HUGE_PAGE * 3 / 4 {
            return WeightBytes::Vec(bytes);
        }
        // `checked_`: a size that wrapped to 0 would make the allocation below zero-sized.
        let Some(size) = len.checked_next_multiple_of(HUGE_PAGE) else {
            return WeightBytes::Vec(bytes);
        };
        let Ok(layout) = std::alloc::Layout::from_size_align(size, HUGE_PAGE) else {
            return WeightBytes::Vec(bytes);
        };
        // SAFETY: the layout's size is at least `len`, which is at least `HUGE_PAGE * 3 / 4`, so
        // it is not zero.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            return WeightBytes::Vec(bytes);
        };
        #[cfg(target_os = "linux")]
        // SAFETY: the range is the allocation just made, which starts on a page boundary (it is
        // aligned to `HUGE_PAGE`); the advice only affects paging, not the contents.
        unsafe {
            libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE);
        }
        // SAFETY: `bytes` holds `len` initialised bytes; the allocation holds `size >= len`
        // writable bytes and is fresh, so it does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), raw, len) };
        WeightBytes::Aligned { ptr, len, layout }
    }
}

impl WeightBytes {
    /// `len` zero bytes, in huge-page memory when large enough; filled in place by the converters,
    /// so that a large matrix never exists twice while loading. Panics, as `vec!` does, when `len`
    /// cannot be allocated at all.
    fn zeroed(len: usize) -> WeightBytes {
        if len < HUGE_PAGE * 3 / 4 {
            return WeightBytes::Vec(vec![0; len]);
        }
        // Fresh anonymous pages are zero without being written, and advising huge pages before the
        // first touch lets the kernel fault them in 2 MiB at a time; `alloc_zeroed` with a large
        // alignment would instead write every byte through 4 KiB faults.
        #[cfg(target_os = "linux")]
        {
            // SAFETY: a new anonymous private mapping of `len` (non-zero) bytes at an address the
            // kernel chooses; no existing memory is affected. Failure is `MAP_FAILED`, checked below.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if raw != libc::MAP_FAILED
                && let Some(ptr) = std::ptr::NonNull::new(raw.cast::<u8>())
            {
                // SAFETY: the range is the mapping just made, which starts on a page boundary; the
                // advice only affects paging, not the contents.
                unsafe { libc::madvise(raw, len, libc::MADV_HUGEPAGE) };
                return WeightBytes::Mapped { ptr, len };
            }
        }
        // `checked_`: a size that wrapped to 0 would make the allocation below zero-sized.
        let Some(size) = len.checked_next_multiple_of(HUGE_PAGE) else {
            return WeightBytes::Vec(vec![0; len]);
        };
        let Ok(layout) = std::alloc::Layout::from_size_align(size, HUGE_PAGE) else {
            return WeightBytes::Vec(vec![0; len]);
        };
        // SAFETY: the layout's size is at least `len`, which is at least `HUGE_PAGE * 3 / 4`, so
        // it is not zero.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            return WeightBytes::Vec(vec![0; len]);
        };
        #[cfg(target_os = "linux")]
        // SAFETY: as in `from_vec`: the allocation just made, aligned to `HUGE_PAGE`; the advice
        // only affects paging, not the contents.
        unsafe {
            libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE);
        }
        WeightBytes::Aligned { ptr, len, layout }
    }
}

impl std::ops::DerefMut for WeightBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            WeightBytes::Vec(bytes) => bytes,
            // SAFETY: `ptr` points to an allocation of at least `len` bytes, all initialised (copied
            // in `from_vec`, zeroed in `zeroed`), owned by `self`, which `&mut self` borrows
            // exclusively; `len <= isize::MAX` since the layout's size is at least `len`.
            WeightBytes::Aligned { ptr, len, .. } => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
            #[cfg(target_os = "linux")]
            // SAFETY: `ptr` points to `len` mapped, writable bytes (zero-filled by the kernel, so
            // initialised) owned by `self`, which `&mut self` borrows exclusively; the mapping
            // succeeded, so `len` fits the address space.
            WeightBytes::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
            WeightBytes::File(map) => map,
        }
    }
}

impl Drop for WeightBytes {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let WeightBytes::Mapped { ptr, len } = self {
            // SAFETY: mapped by `zeroed` with this address and length, unmapped only here, and no
            // slice of it outlives `self`.
            unsafe { libc::munmap(ptr.as_ptr().cast(), *len) };
        }
        if let WeightBytes::Aligned { ptr, layout, .. } = self {
            // SAFETY: allocated by `std::alloc::alloc` or `alloc_zeroed` with this layout in
            // `from_vec` or `zeroed`, freed only here, and no slice of it outlives `self`.
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
            // SAFETY: as in `deref_mut`, for a shared borrow: `len` initialised bytes owned by
            // `self`, which no `&mut` borrow can change while this one lives.
            WeightBytes::Aligned { ptr, len, .. } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            #[cfg(target_os = "linux")]
            // SAFETY: as in `deref_mut`, for a shared borrow: `len` mapped, zero-filled bytes.
            WeightBytes::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            WeightBytes::File(map) => map,
        }
    }
}

/// Activations quantized in the same blocks, one row per token.
pub(crate) struct Q8Rows {
    rows: usize,
    cols: usize,
    qs: Vec<i8>,
    scales: Vec<f32>,
    /// `scale * sum(qs)` of each block, for the minimums of `Format::Q4` weights.
    sums: Vec<f32>,
}

impl PackedMatrix {
    /// Whether a matrix of this shape fits the layout.
    pub(crate) fn supports(rows: usize, cols: usize) -> bool {
        rows.is_multiple_of(GROUP) && cols.is_multiple_of(BLOCK) && rows > 0 && cols > 0
    }

    /// Panics unless the bytes are exactly what the shape and layout call for: whole row groups
    /// (or panels) of whole blocks. The SIMD kernels read `data` through raw pointers computed
    /// from the shape, so this is what keeps them inside it.
    fn check_layout(&self) {
        let group = if self.panel { panel::PANEL } else { GROUP };
        let expected = (self.rows / group)
            .checked_mul(self.cols / BLOCK)
            .and_then(|n| n.checked_mul(self.format.block_bytes(self.panel)));
        assert!(
            PackedMatrix::supports(self.rows, self.cols)
                && self.rows.is_multiple_of(group)
                && expected == Some(self.data.len()),
            "a {}x{} {:?} matrix ({}) holds {} bytes, not {expected:?}",
            self.rows,
            self.cols,
            self.format,
            if self.panel { "panels" } else { "row groups" },
            self.data.len()
        );
    }

    /// Quantizes `rows x cols` values; the shape must be `supports`ed.
    #[cfg(test)]
    pub(crate) fn quantize(values: &[f32], rows: usize, cols: usize) -> PackedMatrix {
        assert!(PackedMatrix::supports(rows, cols) && values.len() == rows * cols, "matrix shape mismatch");
        let mut qs = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * cols / BLOCK];
        quantize_into(values, &mut qs, &mut scales);
        PackedMatrix::interleave(&qs, &scales, rows, cols)
    }

    /// Builds a matrix from ggml Q8_0 blocks (an `f16` scale, then 32 `i8`), keeping them exactly.
    #[cfg(test)]
    pub(crate) fn from_q8_0_blocks(bytes: &[u8], rows: usize, cols: usize) -> Option<PackedMatrix> {
        PackedMatrix::from_gguf_bytes(candle_core::quantized::GgmlDType::Q8_0, bytes, rows, cols)
    }

    /// Builds a matrix from ggml Q4_1 blocks (`f16` scale, `f16` minimum, 16 bytes of nibbles),
    /// keeping them exactly.
    #[cfg(test)]
    pub(crate) fn from_q4_1_blocks(bytes: &[u8], rows: usize, cols: usize) -> Option<PackedMatrix> {
        PackedMatrix::from_gguf_bytes(candle_core::quantized::GgmlDType::Q4_1, bytes, rows, cols)
    }

    #[cfg(test)]
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// The scale, minimum and integer values of one block of one row.
    fn block(&self, row: usize, b: usize) -> (f32, f32, [i8; BLOCK]) {
        let blocks = self.cols / BLOCK;
        if self.panel {
            let bytes = panel::block_bytes(self.format);
            let at = ((row / panel::PANEL) * blocks + b) * bytes;
            return panel::read_block(self.format, &self.data[at..at + bytes], row % panel::PANEL);
        }
        let (g, lane) = (row / GROUP, row % GROUP);
        let at = (g * blocks + b) * self.format.group_block_bytes();
        let data = &self.data[at..at + self.format.group_block_bytes()];
        let mut q = [0i8; BLOCK];
        match self.format {
            Format::Q8 => {
                let d =
                    f32::from_le_bytes([data[lane * 4], data[lane * 4 + 1], data[lane * 4 + 2], data[lane * 4 + 3]]);
                let qs = &data[GROUP * 4 + lane * BLOCK..GROUP * 4 + (lane + 1) * BLOCK];
                for (q, &v) in q.iter_mut().zip(qs) {
                    *q = v as i8;
                }
                (d, 0.0, q)
            }
            Format::Q4 | Format::Q5 => {
                let d = f16_to_f32(u16::from_le_bytes([data[lane * 2], data[lane * 2 + 1]]));
                let m = f16_to_f32(u16::from_le_bytes([data[8 + lane * 2], data[8 + lane * 2 + 1]]));
                let (qh, at) = if self.format == Format::Q5 {
                    let h = &data[16 + lane * 4..16 + lane * 4 + 4];
                    (u32::from_le_bytes([h[0], h[1], h[2], h[3]]), 16 + GROUP * 4)
                } else {
                    (0, 16)
                };
                unpack_nibbles(&data[at + lane * 16..at + (lane + 1) * 16], qh, &mut q);
                (d, m, q)
            }
        }
    }

    #[cfg(test)]
    fn interleave(qs: &[i8], scales: &[f32], rows: usize, cols: usize) -> PackedMatrix {
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
        PackedMatrix { rows, cols, format: Format::Q8, panel: false, data: WeightBytes::from_vec(data) }
    }

    /// Dequantizes one row into `out` (for embedding lookups); `row < self.rows()`.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.rows && out.len() >= self.cols, "row {row} outside a {}-row matrix", self.rows);
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate().take(self.cols / BLOCK) {
            let (d, m, q) = self.block(row, b);
            for (o, &q) in out.iter_mut().zip(&q) {
                *o = f32::from(q) * d + m;
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
        // A prompt chunk's rows are quantized on every thread: done on one, the others would wait.
        let blocks = values.len() / BLOCK;
        let per_item = 256;
        if blocks >= 4 * per_item && cols.is_multiple_of(BLOCK) {
            let (qs_ptr, scales_ptr) = (SyncPtr(qs.as_mut_ptr()), SyncPtr(scales.as_mut_ptr()));
            in_ranges(blocks, per_item, |b0, b1| {
                // SAFETY: `in_ranges` gives `b0 < b1 <= blocks`, and `qs` holds `blocks * BLOCK`
                // values or more and `scales` exactly `blocks`, so both slices lie inside their
                // vectors. Each item gets its own range, so no two slices overlap, and the vectors
                // outlive the pool call, which returns only when every item is done.
                let (q, d) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(qs_ptr.get().add(b0 * BLOCK), (b1 - b0) * BLOCK),
                        std::slice::from_raw_parts_mut(scales_ptr.get().add(b0), b1 - b0),
                    )
                };
                quantize_into(&values[b0 * BLOCK..b1 * BLOCK], q, d);
            });
        } else {
            quantize_into(values, &mut qs, &mut scales);
        }
        // Scales and sums are rounded to f16 precision as ggml's Q8_0/Q8_1 activations are, so
        // that greedy decoding agrees with llama.cpp on near-ties.
        for d in &mut scales {
            *d = round_to_f16(*d);
        }
        let sums = qs
            .chunks_exact(BLOCK)
            .zip(&scales)
            .map(|(q, d)| round_to_f16(q.iter().map(|&v| i32::from(v)).sum::<i32>() as f32 * d))
            .collect();
        Q8Rows { rows: m, cols, qs, scales, sums }
    }
}

/// The 32 values of a 4- or 5-bit block in ggml's order: value `i` in the low nibble of byte `i`
/// and value `i + 16` in its high nibble, fifth bit `i` of `qh` for value `i` (0 for 4-bit).
fn unpack_nibbles(nibbles: &[u8], qh: u32, q: &mut [i8; BLOCK]) {
    for (i, &v) in nibbles.iter().take(BLOCK / 2).enumerate() {
        q[i] = ((v & 0x0f) | (((qh >> i) & 1) as u8) << 4) as i8;
        q[i + 16] = ((v >> 4) | (((qh >> (i + 16)) & 1) as u8) << 4) as i8;
    }
}

fn quantize_into(values: &[f32], qs: &mut [i8], scales: &mut [f32]) {
    for ((x, q), d) in values.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)).zip(scales.iter_mut()) {
        // The maximum in eight lanes, which vectorizes (a running scalar maximum does not).
        let mut lanes = [0f32; 8];
        for chunk in x.chunks_exact(8) {
            for (lane, v) in lanes.iter_mut().zip(chunk) {
                *lane = lane.max(v.abs());
            }
        }
        let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (q, &v) in q.iter_mut().zip(x) {
            // The rounded value r (-127..=127) as the low byte of r + 1.5 * 2^23, whose mantissa
            // is 2^22 + r: a saturating float-to-integer cast would not vectorize.
            *q = ((v * inv).round() + 12_582_912.0).to_bits() as u8 as i8;
        }
        *d = scale;
    }
}

/// Rounds to the nearest value with an f16 mantissa (ties to even); exact for the f16 normal range.
fn round_to_f16(x: f32) -> f32 {
    let bits = x.to_bits();
    let lsb = (bits >> 13) & 1;
    f32::from_bits(bits.wrapping_add(0x0fff + lsb) & !0x1fff)
}

/// The nearest `f16` (ties to even); out-of-range values become infinities, NaN stays NaN.
fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        return sign | 0x7c00 | if mantissa != 0 { 0x200 } else { 0 };
    }
    let e = exponent - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let round = |value: u32, shift: u32| {
        let half = 1u32 << (shift - 1);
        let (r, rest) = (value >> shift, value & ((1u32 << shift) - 1));
        if rest > half || rest == half && r & 1 == 1 { r + 1 } else { r }
    };
    if e <= 0 {
        // A subnormal f16 (or zero): its units are 2^-24.
        if e < -10 {
            return sign;
        }
        return sign | round(mantissa | 0x80_0000, (14 - e) as u32) as u16;
    }
    // A carry out of the mantissa moves to the next exponent, up to infinity, as it should.
    sign | round(((e as u32) << 23) | mantissa, 13) as u16
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
pub(crate) fn matmul(x: &Q8Rows, w: &PackedMatrix) -> Vec<f32> {
    matmul_with(Kernel::detect(), x, w)
}

/// `matmul` on the given kernel; panics if the CPU lacks it.
fn matmul_with(kernel: Kernel, x: &Q8Rows, w: &PackedMatrix) -> Vec<f32> {
    let (m, n) = (x.rows, w.rows);
    // The SIMD kernels compute raw pointers from these shapes: every check they rely on is an
    // `assert!`, so a mismatch panics here instead of reading or writing out of bounds.
    assert!(kernel.supported(), "the {kernel:?} kernel needs CPU features this machine lacks");
    w.check_layout();
    assert_eq!(x.cols, w.cols, "activation width does not match the weight matrix");
    assert_eq!(Some(x.qs.len()), m.checked_mul(x.cols), "activation rows do not match their width");
    let blocks = x.qs.len() / BLOCK;
    assert!(x.scales.len() == blocks && x.sums.len() == blocks, "activation blocks without scales or sums");
    let mut y = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return y;
    }
    if w.panel {
        matmul_panels(kernel, x, w, &mut y);
        return y;
    }
    // Column groups per work item: enough to amortise scheduling, few enough to balance threads.
    let step = if m == 1 { 16 } else { 8 };
    let y_ptr = SyncPtr(y.as_mut_ptr());
    // SAFETY: `kernel` is supported and the shapes agree (asserted above); `y` holds `m * n`
    // floats and outlives the pool call; `in_ranges` gives `g0 < g1 <= n / GROUP`, each item its
    // own range, so no two items write the same columns.
    in_ranges(n / GROUP, step, |g0, g1| unsafe { kernel.run(x, w, g0, g1, y_ptr.get(), n) });
    y
}

/// `matmul` for a matrix in panels, after `matmul_with`'s checks.
fn matmul_panels(kernel: Kernel, x: &Q8Rows, w: &PackedMatrix, y: &mut [f32]) {
    let n = w.rows;
    assert!(w.panel && y.len() == x.rows * n, "panel product with the wrong output size");
    // Panels per work item: a token's item streams 64 weight rows; a batch's item keeps two
    // panels' weights in L2 while every tile of activation rows meets them.
    let step = if x.rows == 1 { 4 } else { 2 };
    let y_ptr = SyncPtr(y.as_mut_ptr());
    // SAFETY: as in `matmul_with`, with `p0 < p1 <= n / 16` (`n` is a multiple of 16, checked by
    // `check_layout`) and `w` in panels.
    in_ranges(n / panel::PANEL, step, |p0, p1| unsafe { kernel.run_panels(x, w, p0, p1, y_ptr.get(), n) });
}

/// Runs `work(start, end)` over `0..units` in ranges of `step`, on candle's thread pool when
/// there is more than one, and returns when all are done. The ranges are disjoint, non-empty and
/// within `0..units` (callers' `unsafe` blocks rely on it).
fn in_ranges(units: usize, step: usize, work: impl Fn(usize, usize) + Sync) {
    let items = units.div_ceil(step);
    let run = |range: std::ops::Range<usize>| {
        for item in range {
            work(item * step, ((item + 1) * step).min(units));
        }
    };
    if items <= 1 {
        run(0..items);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(items, run);
    }
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
    /// Whether this CPU can run the kernel: every feature that any of its functions enables with
    /// `#[target_feature]` (the union of the lists in `x86` and `panel::x86`), detected at run
    /// time. Running a function on a CPU without one of its features is undefined behaviour.
    fn supported(self) -> bool {
        match self {
            // `avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni` (the Q8 row-group kernels need
            // all but f16c; the 4- and 5-bit ones convert their f16 scales with F16C).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            // `avx2,fma,f16c`, likewise.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            Kernel::Portable => true,
        }
    }

    /// Every kernel this CPU can run, best first (for tests that compare them).
    #[cfg(test)]
    fn available() -> Vec<Kernel> {
        let all = [
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2,
            Kernel::Portable,
        ];
        all.into_iter().filter(|k| k.supported()).collect()
    }

    /// The best kernel this CPU runs; `GLINT_NO_AVX512` and `GLINT_PORTABLE_KERNELS` pick a lesser
    /// one (for benchmarks and checks).
    fn detect() -> Kernel {
        use std::sync::OnceLock;
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            if std::env::var_os("GLINT_PORTABLE_KERNELS").is_some() {
                return Kernel::Portable;
            }
            #[cfg(target_arch = "x86_64")]
            {
                if Kernel::Avx512Vnni.supported() && std::env::var_os("GLINT_NO_AVX512").is_none() {
                    return Kernel::Avx512Vnni;
                }
                if Kernel::Avx2.supported() {
                    return Kernel::Avx2;
                }
            }
            Kernel::Portable
        })
    }

    /// Computes the columns of row groups `g0..g1` for every row of `y` (row stride `n`).
    ///
    /// # Safety
    /// `self.supported()`; `w` is in row groups and passed `check_layout`, `n == w.rows`; `x`
    /// passed `matmul_with`'s checks against `w`; `g0 <= g1 <= n / GROUP`; `y` points to
    /// `x.rows * n` writable floats, and no other thread touches columns `g0 * 4..g1 * 4` of them.
    unsafe fn run(self, x: &Q8Rows, w: &PackedMatrix, g0: usize, g1: usize, y: *mut f32, n: usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller checked `self.supported()`, which detected every feature these
            // functions enable; the shapes, group range and output are the caller's, as the
            // functions require.
            Kernel::Avx512Vnni => unsafe {
                match w.format {
                    Format::Q8 => x86::run_vnni(x, w, g0, g1, y, n),
                    Format::Q4 => x86::run_q4_vnni::<false>(x, w, g0, g1, y, n),
                    Format::Q5 => x86::run_q4_vnni::<true>(x, w, g0, g1, y, n),
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for the AVX2 features.
            Kernel::Avx2 => unsafe {
                match w.format {
                    Format::Q8 => x86::run_avx2(x, w, g0, g1, y, n),
                    Format::Q4 => x86::run_q4_avx2::<false>(x, w, g0, g1, y, n),
                    Format::Q5 => x86::run_q4_avx2::<true>(x, w, g0, g1, y, n),
                }
            },
            Kernel::Portable => {
                for r in 0..x.rows {
                    for c in g0 * GROUP..g1 * GROUP {
                        let v = portable_dot(x, r, w, c);
                        // SAFETY: `r < x.rows` and `c < g1 * GROUP <= n`, so the float is inside
                        // the caller's `x.rows * n`, in columns only this call writes.
                        unsafe { *y.add(r * n + c) = v };
                    }
                }
            }
        }
    }
}

impl Kernel {
    /// Computes the columns of panels `p0..p1` for every row of `y` (row stride `n`).
    ///
    /// # Safety
    /// As `run`, with `w` in panels and `p0 <= p1 <= n / 16` in place of the group range.
    unsafe fn run_panels(self, x: &Q8Rows, w: &PackedMatrix, p0: usize, p1: usize, y: *mut f32, n: usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller checked `self.supported()`, which includes every feature of the
            // VNNI panel path; shapes, panel range and output are the caller's, as `run_x86` needs.
            Kernel::Avx512Vnni => unsafe { panel::run_x86(true, x, w, p0, p1, y, n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for the AVX2 panel path and its features.
            Kernel::Avx2 => unsafe { panel::run_x86(false, x, w, p0, p1, y, n) },
            Kernel::Portable => {
                for r in 0..x.rows {
                    for c in p0 * panel::PANEL..p1 * panel::PANEL {
                        let v = portable_dot(x, r, w, c);
                        // SAFETY: `r < x.rows` and `c < p1 * 16 <= n`, so the float is inside the
                        // caller's `x.rows * n`, in columns only this call writes.
                        unsafe { *y.add(r * n + c) = v };
                    }
                }
            }
        }
    }
}

fn portable_dot(x: &Q8Rows, r: usize, w: &PackedMatrix, c: usize) -> f32 {
    let k = x.cols;
    let blocks = k / BLOCK;
    let mut sum = 0f32;
    for b in 0..blocks {
        let (d, m, q) = w.block(c, b);
        let xq = &x.qs[r * k + b * BLOCK..r * k + (b + 1) * BLOCK];
        let dot: i32 = q.iter().zip(xq).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        sum += dot as f32 * d * x.scales[r * blocks + b] + m * x.sums[r * blocks + b];
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Register-tiled Q8 dot products: `RM` activation rows by `NG` groups of four weight rows per
    //! tile, one 32-byte block at a time; the products of a block are summed in 8 `i32` lanes,
    //! scaled and accumulated in `f32` lanes, with horizontal sums only at the end of a tile.

    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES, PackedMatrix, Q4_GROUP_BLOCK_BYTES, Q5_GROUP_BLOCK_BYTES, Q8Rows};

    /// How many blocks ahead of the one being multiplied to prefetch.
    const PREFETCH_BLOCKS: usize = 24;

    macro_rules! tiled_kernel {
        ($name:ident, $tile:ident, $features:literal, $dot:ident, $rm:literal) => {
            /// # Safety
            /// The CPU has the features; everything else as `Kernel::run` requires, with `w` in
            /// `Format::Q8`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(x: &Q8Rows, w: &PackedMatrix, g0: usize, g1: usize, y: *mut f32, n: usize) {
                let m = x.rows;
                let mut g = g0;
                if m == 1 {
                    // One token: two groups at a time for more independent loads in flight.
                    while g + 2 <= g1 {
                        // SAFETY: row 0 is the only row (`m == 1`); groups `g` and `g + 1` exist
                        // and are the caller's (`g + 2 <= g1 <= n / GROUP`); features, layout and
                        // output as this function requires.
                        unsafe { $tile::<1, 2>(x, w, 0, g, y, n) };
                        g += 2;
                    }
                }
                while g < g1 {
                    let mut r = 0;
                    while r + $rm <= m {
                        // SAFETY: rows `r..r + RM` exist (`r + RM <= m`); group `g < g1` exists
                        // and is the caller's; the rest as above.
                        unsafe { $tile::<$rm, 1>(x, w, r, g, y, n) };
                        r += $rm;
                    }
                    // The remaining rows as one tile, so a keystroke's two or three tokens read
                    // the weights once, not once per token.
                    match m - r {
                        0 => {}
                        // SAFETY: the tile's rows are the last `m - r` rows; the rest as above.
                        1 => unsafe { $tile::<1, 1>(x, w, r, g, y, n) },
                        // SAFETY: as above.
                        2 => unsafe { $tile::<2, 1>(x, w, r, g, y, n) },
                        _ => {
                            let mut r = r;
                            while r + 3 <= m {
                                // SAFETY: rows `r..r + 3` exist (`r + 3 <= m`); the rest as above.
                                unsafe { $tile::<3, 1>(x, w, r, g, y, n) };
                                r += 3;
                            }
                            while r < m {
                                // SAFETY: row `r < m` exists; the rest as above.
                                unsafe { $tile::<1, 1>(x, w, r, g, y, n) };
                                r += 1;
                            }
                        }
                    }
                    g += 1;
                }
            }

            /// # Safety
            /// Rows `r..r+RM` of `x` and groups `g..g+NG` of `w` exist, and the caller owns their
            /// columns of `y`; the CPU has the features; the rest as `Kernel::run`, with `w` in
            /// `Format::Q8`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $tile<const RM: usize, const NG: usize>(
                x: &Q8Rows,
                w: &PackedMatrix,
                r: usize,
                g: usize,
                y: *mut f32,
                n: usize,
            ) {
                let k = x.cols;
                let blocks = k / BLOCK;
                let mut acc = [[[_mm256_setzero_ps(); GROUP]; NG]; RM];
                // SAFETY: `x` holds `x.rows * k` values and `x.rows * blocks` scales (asserted by
                // `matmul_with`), so with `r + RM <= x.rows`, `i < RM` and `b < blocks` the
                // 32-byte loads at `xq + i * k + b * 32` stay in row `r + i`, and the `f32` read
                // at `xs + i * blocks + b` is an aligned element of `x.scales`. `w.data` holds
                // `w.rows / 4 * blocks` blocks of `GROUP_BLOCK_BYTES` (`check_layout`), so with
                // `g + h < n / 4 == w.rows / 4` block `p` is inside it, and the reads at `p`
                // (four unaligned `f32` scales, bytes 0..16) and `p + 16 + 32 * j` (`j < 4`, up to
                // byte 144) stay in that block. The prefetch address may lie past the end of
                // `w.data`, so it is computed with `wrapping_add`, and a prefetch never faults.
                // The stores write four floats of row `r + i` at columns `(g + h) * 4..+4 <= n`,
                // which the caller owns. Every intrinsic needs only the features enabled here.
                unsafe {
                    let xq = x.qs.as_ptr().add(r * k);
                    let xs = x.scales.as_ptr().add(r * blocks);
                    let base = w.data.as_ptr();
                    for b in 0..blocks {
                        for h in 0..NG {
                            let p = base.add(((g + h) * blocks + b) * GROUP_BLOCK_BYTES);
                            // Hardware prefetchers stop at page boundaries; ask for the data
                            // far enough ahead to hide memory latency across them.
                            // `wrapping_add`: near the end this points past the allocation, which
                            // a prefetch may do but `add` may not.
                            let ahead = p.wrapping_add(PREFETCH_BLOCKS * GROUP_BLOCK_BYTES) as *const i8;
                            _mm_prefetch::<_MM_HINT_T0>(ahead);
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
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

    /// Byte `i` is all ones where bit `i` of `bits` is set (ggml's `bytes_from_bits_32`).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn bytes_from_bits(bits: u32) -> __m256i {
        let shuffle = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0);
        let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuffle);
        let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(bytes, others), _mm256_set1_epi64x(-1))
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

    macro_rules! q4_kernel {
        ($name:ident, $tile:ident, $features:literal, $dot:ident, $rm:literal) => {
            /// # Safety
            /// The CPU has the features; everything else as `Kernel::run` requires, with `w` in
            /// `Format::Q5` if `Q5` and in `Format::Q4` otherwise.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name<const Q5: bool>(
                x: &Q8Rows,
                w: &PackedMatrix,
                g0: usize,
                g1: usize,
                y: *mut f32,
                n: usize,
            ) {
                let m = x.rows;
                let mut g = g0;
                if m == 1 {
                    while g + 2 <= g1 {
                        // SAFETY: row 0 is the only row (`m == 1`); groups `g` and `g + 1` exist
                        // and are the caller's (`g + 2 <= g1 <= n / GROUP`); features, format,
                        // layout and output as this function requires.
                        unsafe { $tile::<1, 2, Q5>(x, w, 0, g, y, n) };
                        g += 2;
                    }
                }
                while g < g1 {
                    let mut r = 0;
                    while r + $rm <= m {
                        // SAFETY: rows `r..r + RM` exist (`r + RM <= m`); group `g < g1` exists
                        // and is the caller's; the rest as above.
                        unsafe { $tile::<$rm, 1, Q5>(x, w, r, g, y, n) };
                        r += $rm;
                    }
                    // The remaining rows as one tile, so a keystroke's two or three tokens read
                    // the weights once, not once per token.
                    match m - r {
                        0 => {}
                        // SAFETY: the tile's rows are the last `m - r` rows; the rest as above.
                        1 => unsafe { $tile::<1, 1, Q5>(x, w, r, g, y, n) },
                        // SAFETY: as above.
                        2 => unsafe { $tile::<2, 1, Q5>(x, w, r, g, y, n) },
                        _ => {
                            let mut r = r;
                            while r + 3 <= m {
                                // SAFETY: rows `r..r + 3` exist (`r + 3 <= m`); the rest as above.
                                unsafe { $tile::<3, 1, Q5>(x, w, r, g, y, n) };
                                r += 3;
                            }
                            while r < m {
                                // SAFETY: row `r < m` exists; the rest as above.
                                unsafe { $tile::<1, 1, Q5>(x, w, r, g, y, n) };
                                r += 1;
                            }
                        }
                    }
                    g += 1;
                }
            }

            /// # Safety
            /// Rows `r..r+RM` of `x` and groups `g..g+NG` of `w` exist, and the caller owns their
            /// columns of `y`; the CPU has the features; the rest as `Kernel::run`, with `w` in
            /// `Format::Q5` if `Q5` and in `Format::Q4` otherwise.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $tile<const RM: usize, const NG: usize, const Q5: bool>(
                x: &Q8Rows,
                w: &PackedMatrix,
                r: usize,
                g: usize,
                y: *mut f32,
                n: usize,
            ) {
                let k = x.cols;
                let blocks = k / BLOCK;
                let mut acc = [[[_mm256_setzero_ps(); GROUP]; NG]; RM];
                let mut mins = [[_mm_setzero_ps(); NG]; RM];
                // SAFETY: the activation reads as in the Q8 tile, plus the aligned `f32` sums at
                // `xsum + i * blocks + b` (`x.sums` holds `x.rows * blocks`, asserted by
                // `matmul_with`). `w.data` holds `w.rows / 4 * blocks` blocks of `block_bytes`
                // (`check_layout`, the format matching `Q5`), so block `p` of group `g + h < n / 4`
                // is inside it, and the reads stay in the block: scales at bytes 0..8, minimums
                // 8..16, fifth-bit masks 16..32 (Q5 only, unaligned `u32` reads), and 16 bytes of
                // nibbles per row `j < 4` from `nibbles` up to `nibbles + 64 == block_bytes` (80
                // for Q4, 96 for Q5). The prefetch uses `wrapping_add` as in the Q8 tile; the
                // stores are as there. `_mm_cvtph_ps` needs F16C, which `$features` enables and
                // `Kernel::supported` detects.
                unsafe {
                    let xq = x.qs.as_ptr().add(r * k);
                    let xs = x.scales.as_ptr().add(r * blocks);
                    let xsum = x.sums.as_ptr().add(r * blocks);
                    let base = w.data.as_ptr();
                    let low = _mm_set1_epi8(0x0f);
                    let fifth = _mm256_set1_epi8(0x10);
                    let (block_bytes, nibbles) =
                        if Q5 { (Q5_GROUP_BLOCK_BYTES, 16 + GROUP * 4) } else { (Q4_GROUP_BLOCK_BYTES, 16) };
                    for b in 0..blocks {
                        for h in 0..NG {
                            let p = base.add(((g + h) * blocks + b) * block_bytes);
                            // `wrapping_add`: near the end this points past the allocation.
                            let ahead = p.wrapping_add(PREFETCH_BLOCKS * block_bytes) as *const i8;
                            _mm_prefetch::<_MM_HINT_T0>(ahead);
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                            let d4 = _mm_cvtph_ps(_mm_loadl_epi64(p as *const __m128i));
                            let m4 = _mm_cvtph_ps(_mm_loadl_epi64(p.add(8) as *const __m128i));
                            let mut wd = [0f32; GROUP];
                            _mm_storeu_ps(wd.as_mut_ptr(), d4);
                            let mut wq = [_mm256_setzero_si256(); GROUP];
                            for j in 0..GROUP {
                                let raw = _mm_loadu_si128(p.add(nibbles + j * 16) as *const __m128i);
                                let lo = _mm_and_si128(raw, low);
                                let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low);
                                wq[j] = _mm256_set_m128i(hi, lo);
                                if Q5 {
                                    let qh = std::ptr::read_unaligned(p.add(16 + j * 4) as *const u32);
                                    wq[j] = _mm256_or_si256(wq[j], _mm256_and_si256(bytes_from_bits(qh), fifth));
                                }
                            }
                            for i in 0..RM {
                                let xv = _mm256_loadu_si256(xq.add(i * k + b * BLOCK) as *const __m256i);
                                let xd = *xs.add(i * blocks + b);
                                mins[i][h] = _mm_fmadd_ps(m4, _mm_set1_ps(*xsum.add(i * blocks + b)), mins[i][h]);
                                for j in 0..GROUP {
                                    let sums = $dot(wq[j], xv);
                                    let scale = _mm256_set1_ps(xd * wd[j]);
                                    acc[i][h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc[i][h][j]);
                                }
                            }
                        }
                    }
                    for i in 0..RM {
                        for h in 0..NG {
                            let sums = _mm_add_ps(hsum4(acc[i][h]), mins[i][h]);
                            _mm_storeu_ps(y.add((r + i) * n + (g + h) * GROUP), sums);
                        }
                    }
                }
            }
        };
    }

    q4_kernel!(run_q4_vnni, tile_q4_vnni, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", dot_vnni, 4);
    q4_kernel!(run_q4_avx2, tile_q4_avx2, "avx2,fma,f16c", dot_avx2, 2);
}

/// A pointer to an output buffer that workers write disjoint parts of. Sharing the pointer is
/// harmless in itself; every dereference is an `unsafe` block of its user (`matmul`,
/// `Q8Rows::quantize`, `model::attention`) that says why its part is disjoint and alive.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T = f32>(pub(crate) *mut T);
// SAFETY: the wrapper only carries the address; workers on other threads write `T` values through
// it, which `T: Send` allows, and the disjointness and lifetime of those writes are each
// dereference's own obligation.
unsafe impl<T: Send> Sync for SyncPtr<T> {}
// SAFETY: as for `Sync`.
unsafe impl<T: Send> Send for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    pub(crate) fn get(self) -> *mut T {
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
        for (m, k, n) in
            [(1, 64, 12), (5, 96, 16), (9, 576, 64), (1, 576, 4), (3, 32, 8), (2, 64, 8), (6, 64, 8), (7, 32, 4)]
        {
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let wq = PackedMatrix::quantize(&w, n, k);
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
    fn a_matrix_whose_bytes_do_not_fit_its_shape_panics_before_any_kernel_reads_it() {
        let (m, k) = (3, 64);
        let xq = Q8Rows::quantize(&values(m * k, 7), m);
        // Four-row groups (8 rows) and panels (16 rows), each short of its last bytes, or longer.
        let groups = PackedMatrix::quantize(&values(8 * k, 8), 8, k);
        let mut q8_0 = Vec::new();
        for _ in 0..16 * k / BLOCK {
            q8_0.extend([0x00, 0x3c]);
            q8_0.extend(0..32u8);
        }
        let panels = PackedMatrix::from_q8_0_blocks(&q8_0, 16, k).unwrap();
        for w in [groups, panels] {
            assert_eq!(matmul(&xq, &w).len(), m * w.rows, "the intact matrix multiplies");
            for len in [w.data.len() - 1, w.data.len() - 64, w.data.len() + 64] {
                let mut bytes = w.data.to_vec();
                bytes.resize(len, 0);
                let bad = PackedMatrix { data: WeightBytes::from_vec(bytes), ..w.clone() };
                for kernel in Kernel::available() {
                    let result = std::panic::catch_unwind(|| matmul_with(kernel, &xq, &bad));
                    assert!(result.is_err(), "{kernel:?} multiplied {len} bytes for a {}x{k} matrix", w.rows);
                }
            }
        }
    }

    /// Every feature a kernel's functions enable with `#[target_feature]` (directly, or through the
    /// feature lists the kernel macros are given) is one `Kernel::supported` detects: a function
    /// run on a CPU without one of its features is undefined behaviour, and no test on a CPU that
    /// has them all would notice. Lists that name an AVX-512 feature belong to the VNNI kernel;
    /// the others run under both.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_enabled_cpu_feature_is_detected_before_its_kernel_runs() {
        const SOURCES: [&str; 2] = [include_str!("kernels.rs"), include_str!("kernels/panel.rs")];
        let this = SOURCES[0];
        let detected = |from: &str, to: &str| -> Vec<&str> {
            let body = &this[this.find(from).unwrap()..];
            let body = &body[..body.find(to).unwrap()];
            body.split("is_x86_feature_detected!(\"").skip(1).map(|s| &s[..s.find('"').unwrap()]).collect()
        };
        let vnni = detected("Kernel::Avx512Vnni => {", "Kernel::Avx2 =>");
        let avx2 = detected("Kernel::Avx2 => {", "Kernel::Portable => true");
        assert!(avx2.contains(&"f16c") && vnni.contains(&"avx512vnni"), "{avx2:?} {vnni:?}");
        let known = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx", "sse4.1", "ssse3"];
        let mut lists = 0;
        for source in SOURCES {
            // The code, not its tests (which name features of their own).
            let source = source.split("#[cfg(test)]\nmod tests").next().unwrap();
            for (i, literal) in source.split('"').enumerate() {
                let features: Vec<&str> = literal.split(',').collect();
                if i % 2 == 0 || !features.iter().all(|f| known.contains(f)) {
                    continue;
                }
                // A feature list, not a detection.
                if source.split('"').nth(i - 1).is_some_and(|before| before.ends_with("is_x86_feature_detected!(")) {
                    continue;
                }
                lists += 1;
                let kernel = if features.iter().any(|f| f.starts_with("avx512")) { &vnni } else { &avx2 };
                for feature in features {
                    assert!(kernel.contains(&feature), "`{literal}` enables {feature}, which is not detected");
                }
            }
        }
        assert!(lists >= 8, "the feature lists were found: {lists}");
    }

    #[test]
    fn a_kernel_the_cpu_lacks_panics_instead_of_running() {
        let xq = Q8Rows::quantize(&values(64, 1), 1);
        let w = PackedMatrix::quantize(&values(4 * 64, 2), 4, 64);
        #[cfg(target_arch = "x86_64")]
        for kernel in [Kernel::Avx512Vnni, Kernel::Avx2] {
            let result = std::panic::catch_unwind(|| matmul_with(kernel, &xq, &w));
            assert_eq!(result.is_ok(), kernel.supported(), "{kernel:?}");
        }
        assert!(matmul_with(Kernel::Portable, &xq, &w).len() == 4);
    }

    #[test]
    fn activations_quantize_to_the_rounded_scaled_values_on_one_thread_or_many() {
        // Large enough to be split over the thread pool, with exact halves and the extremes.
        let mut x = values(64 * 1024, 9);
        x[0] = 1.0;
        x[1] = -1.0;
        x[2] = 0.5 / 127.0;
        x[3] = -1.5 / 127.0;
        x[32..64].fill(0.0);
        let q = Q8Rows::quantize(&x, 64);
        for (b, block) in x.chunks_exact(BLOCK).enumerate() {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (i, &v) in block.iter().enumerate() {
                assert_eq!(q.qs[b * BLOCK + i], (v * inv).round() as i8, "block {b} value {i}: {v}");
            }
            assert_eq!(
                q.qs[b * BLOCK..(b + 1) * BLOCK].iter().map(|v| v.unsigned_abs()).max(),
                Some(if amax > 0.0 { 127 } else { 0 })
            );
        }
        let mut qs = vec![0i8; x.len()];
        let mut scales = vec![0f32; x.len() / BLOCK];
        quantize_into(&x, &mut qs, &mut scales);
        assert_eq!(q.qs, qs, "the threaded split changed a value");
        assert_eq!((q.qs[0], q.qs[1], q.qs[3]), (127, -127, -2));
    }

    #[test]
    fn the_q4_kernels_match_the_portable_product() {
        // Random Q4_1 blocks: f16 scale 0.01 or 0.02, f16 minimum -0.05, random nibbles.
        let (rows, cols) = (12, 96);
        let mut bytes = Vec::new();
        let nibbles = values(rows * cols / 2, 3);
        for (i, chunk) in nibbles.chunks_exact(16).enumerate() {
            bytes.extend(if i % 2 == 0 { [0x1f, 0x21] } else { [0x1f, 0x25] });
            bytes.extend([0x66, 0xaa]);
            bytes.extend(chunk.iter().map(|v| ((v + 0.5) * 255.0) as u8));
        }
        let w = PackedMatrix::from_q4_1_blocks(&bytes, rows, cols).unwrap();
        assert_eq!(w.format(), Format::Q4);
        for m in [1, 2, 3, 5, 7] {
            let x = values(m * cols, 4);
            let xq = Q8Rows::quantize(&x, m);
            let y = matmul(&xq, &w);
            let mut row = vec![0f32; cols];
            for r in 0..m {
                for c in 0..rows {
                    let portable = portable_dot(&xq, r, &w, c);
                    assert!(
                        (y[r * rows + c] - portable).abs() < 1e-4,
                        "{m} {r} {c}: {} vs {portable}",
                        y[r * rows + c]
                    );
                    w.row_into(c, &mut row);
                    let exact: f32 = (0..cols).map(|i| row[i] * x[r * cols + i]).sum();
                    assert!((portable - exact).abs() < 0.05, "{portable} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn the_kernels_agree_with_candles_ggml_kernels() {
        use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
        use candle_core::{Device, Module, Tensor};
        let (m, k, n) = (3, 576, 64);
        let w = values(n * k, 5);
        let x = values(m * k, 6);
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&wt, dtype).unwrap();
            let bytes = q.data().unwrap();
            let ours = match dtype {
                GgmlDType::Q4_1 => PackedMatrix::from_q4_1_blocks(&bytes, n, k).unwrap(),
                _ => PackedMatrix::from_q8_0_blocks(&bytes, n, k).unwrap(),
            };
            let expected: Vec<f32> =
                QMatMul::from_qtensor(q).unwrap().forward(&xt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let got = matmul(&Q8Rows::quantize(&x, m), &ours);
            let diff = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let scale = expected.iter().map(|v| v.abs()).fold(0f32, f32::max);
            assert!(diff <= 1e-5 * scale.max(1.0), "{dtype:?}: max difference {diff} (values up to {scale})");
        }
    }

    #[test]
    fn q8_0_blocks_convert_exactly_and_f16_decodes() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(round_to_f16(1.0 + 1.0 / 4096.0), 1.0);
        assert_eq!(round_to_f16(1.0 + 3.0 / 2048.0), 1.0 + 2.0 / 1024.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        let mut bytes = Vec::new();
        for r in 0..4u8 {
            bytes.extend([0x00, 0x3c]);
            bytes.extend((0..32).map(|i| (i as i8 - 16 + r as i8) as u8));
        }
        assert!(PackedMatrix::from_q8_0_blocks(&bytes, 1, 128).is_none());
        let m = PackedMatrix::from_q8_0_blocks(&bytes, 4, 32).unwrap();
        let mut row = vec![0f32; 32];
        m.row_into(2, &mut row);
        assert_eq!(row[0], -14.0);
        assert_eq!(row[31], 17.0);
    }
}
