//! Repacking GGUF weight blocks into the kernels' formats, one row at a time and straight from the
//! file's bytes, so that no tensor ever exists as a whole `f32` copy.
//!
//! Each GGUF format decodes a row into per-32-value blocks of `(d, m, q)` with `w = d * q + m`:
//! Q8_0 keeps its 8-bit values (`Format::Q8`); Q4_0, Q4_1 and Q4_K have 4-bit values and a
//! minimum (`Format::Q4`); Q5_0, Q5_1 and Q5_K have 5-bit values and a minimum (`Format::Q5`).
//! Formats whose blocks do not fit one of those exactly (Q6_K with two scales per 32 values, and
//! float tensors) are requantized to `Format::Q8` block by block from their exact values.

use candle_core::quantized::GgmlDType;

use super::panel::{self, PANEL, RowBlock};
use super::{
    BLOCK, Format, GROUP, PackedMatrix, SyncPtr, WeightBytes, f16_to_f32, f32_to_f16, in_ranges, quantize_into,
    unpack_nibbles,
};

/// Whether a matrix of `rows` rows is stored in panels (see `panel`): whenever its rows fill
/// whole panels, unless `GLINT_ROW_GROUPS` asks for the older four-row groups (for benchmarks).
fn panels_for(rows: usize) -> bool {
    static ROW_GROUPS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    rows.is_multiple_of(PANEL) && !*ROW_GROUPS.get_or_init(|| std::env::var_os("GLINT_ROW_GROUPS").is_some())
}

/// Values per K-quant super-block.
const QK_K: usize = 256;

/// The packed format a GGUF block format converts to, if any.
pub(crate) fn target_format(dtype: GgmlDType) -> Option<Format> {
    // Q4_0 and Q5_0 (`w = d * (q - offset)`) fit Q8 exactly too; benchmarks compare the two
    // layouts with `GLINT_OFFSET_QUANTS_AS_Q8=1`.
    static AS_Q8: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let as_q8 = *AS_Q8.get_or_init(|| std::env::var_os("GLINT_OFFSET_QUANTS_AS_Q8").is_some());
    match dtype {
        GgmlDType::Q4_0 | GgmlDType::Q5_0 if as_q8 => Some(Format::Q8),
        GgmlDType::Q8_0 | GgmlDType::Q6K | GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Some(Format::Q8),
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q4K => Some(Format::Q4),
        GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q5K => Some(Format::Q5),
        _ => None,
    }
}

/// Bytes of one row of `cols` values in a GGUF format, or `None` if the row is not whole blocks.
pub(crate) fn row_bytes(dtype: GgmlDType, cols: usize) -> Option<usize> {
    let block = dtype.block_size();
    if block == 0 || !cols.is_multiple_of(block) {
        return None;
    }
    (cols / block).checked_mul(dtype.type_size())
}

/// One GGUF tensor to pack: its format, its bytes (whole rows, as in the file) and its rows.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) dtype: GgmlDType,
    pub(crate) bytes: &'a [u8],
    pub(crate) rows: usize,
}

/// Row groups per work item while packing: a few hundred KiB of the file each.
const PACK_STEP: usize = 16;

impl PackedMatrix {
    /// Repacks a `rows x cols` GGUF tensor's bytes; `None` if the format has no packed form, the
    /// shape does not fit the layout, or the byte count is wrong.
    #[cfg(test)]
    pub(crate) fn from_gguf_bytes(dtype: GgmlDType, bytes: &[u8], rows: usize, cols: usize) -> Option<PackedMatrix> {
        PackedMatrix::pack(&[Source { dtype, bytes, rows }], cols)
    }

    /// Packs GGUF tensors of `cols` columns, stacked in order, into one matrix: one tensor is the
    /// usual case; projections that read the same input (q, k and v; gate and up) are stacked so
    /// that one product computes them all, without packing them apart and copying them together.
    ///
    /// `None` if a format has no packed form, the parts pack to different formats, a shape does
    /// not fit the layout, or a part's byte count does not match its shape. The rows are converted
    /// straight from the file's bytes, over the thread pool: loading writes each packed byte once
    /// and never holds a tensor as `f32`.
    pub(crate) fn pack(parts: &[Source<'_>], cols: usize) -> Option<PackedMatrix> {
        let format = target_format(parts.first()?.dtype)?;
        let mut rows = 0usize;
        for part in parts {
            let row_len = row_bytes(part.dtype, cols)?;
            if target_format(part.dtype) != Some(format)
                || !PackedMatrix::supports(part.rows, cols)
                || part.rows.checked_mul(row_len)? != part.bytes.len()
            {
                return None;
            }
            rows = rows.checked_add(part.rows)?;
        }
        // Panels only where every part fills whole panels, so that no panel spans two parts.
        let panel = panels_for(rows) && parts.iter().all(|p| panels_for(p.rows));
        let group = if panel { PANEL } else { GROUP };
        let block_bytes = format.block_bytes(panel);
        let group_bytes = (cols / BLOCK).checked_mul(block_bytes)?;
        let groups = rows / group;
        let mut data = WeightBytes::zeroed(groups.checked_mul(group_bytes)?);
        // The first group of each part, to find a group's part.
        let firsts: Vec<usize> = parts
            .iter()
            .scan(0, |first, p| {
                let at = *first;
                *first += p.rows / group;
                Some(at)
            })
            .collect();
        let out = SyncPtr(data.as_mut_ptr());
        in_ranges(groups, PACK_STEP, |g0, g1| {
            let mut packer = GroupPacker::new(format, panel, cols);
            for g in g0..g1 {
                let p = firsts.partition_point(|&first| first <= g) - 1;
                let part = &parts[p];
                let row_len = part.bytes.len() / part.rows;
                let local = g - firsts[p];
                let bytes = &part.bytes[local * group * row_len..(local + 1) * group * row_len];
                // SAFETY: group `g` owns bytes `g * group_bytes..(g + 1) * group_bytes` of `data`
                // (`groups * group_bytes` long, alive for the whole pool call), and each group is
                // in exactly one work item.
                let out = unsafe { std::slice::from_raw_parts_mut(out.get().add(g * group_bytes), group_bytes) };
                packer.pack(part.dtype, bytes, row_len, out);
            }
        });
        Some(PackedMatrix { rows, cols, format, panel, data })
    }
}

impl PackedMatrix {
    /// Rows, columns, format (as a number for files) and whether rows are in panels: what
    /// [`PackedMatrix::from_mapped`] needs besides the bytes.
    pub(crate) fn layout(&self) -> (usize, usize, u8, bool) {
        let format = match self.format {
            Format::Q8 => 0,
            Format::Q4 => 1,
            Format::Q5 => 2,
        };
        (self.rows, self.cols, format, self.panel)
    }

    /// The packed bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// A matrix whose packed bytes were mapped from a file (see `weight_cache`); `None` unless the
    /// layout is one this build makes and the byte count matches it.
    pub(crate) fn from_mapped(
        rows: usize,
        cols: usize,
        format: u8,
        panel: bool,
        map: memmap2::MmapMut,
    ) -> Option<PackedMatrix> {
        let format = [Format::Q8, Format::Q4, Format::Q5].get(usize::from(format)).copied()?;
        if !PackedMatrix::supports(rows, cols) || panel && !panels_for(rows) {
            return None;
        }
        let group = if panel { PANEL } else { GROUP };
        let len = (rows / group).checked_mul(cols / BLOCK)?.checked_mul(format.block_bytes(panel))?;
        (map.len() == len).then(|| PackedMatrix { rows, cols, format, panel, data: WeightBytes::File(map) })
    }
}

/// Scratch for converting one row group (a panel of 16 rows or a group of four) at a time.
struct GroupPacker {
    format: Format,
    panel: bool,
    decoded: Vec<RowBlocks>,
    panel_rows: Vec<RowBlock>,
}

impl GroupPacker {
    fn new(format: Format, panel: bool, cols: usize) -> GroupPacker {
        let group = if panel { PANEL } else { GROUP };
        GroupPacker {
            format,
            panel,
            decoded: (0..group).map(|_| RowBlocks::new(cols)).collect(),
            panel_rows: (0..PANEL).map(|_| RowBlock { d: 0.0, m: 0.0, q: [0; BLOCK] }).collect(),
        }
    }

    /// Converts one group's rows (`bytes`, `row_len` bytes each, in `dtype`) into `out`.
    fn pack(&mut self, dtype: GgmlDType, bytes: &[u8], row_len: usize, out: &mut [u8]) {
        for (row, bytes) in self.decoded.iter_mut().zip(bytes.chunks_exact(row_len)) {
            row.decode(dtype, bytes);
        }
        let block_bytes = self.format.block_bytes(self.panel);
        for (b, out) in out.chunks_exact_mut(block_bytes).enumerate() {
            if self.panel {
                for (row, out) in self.decoded.iter().zip(self.panel_rows.iter_mut()) {
                    row.block(self.format, b, out);
                }
                panel::write_block(self.format, &self.panel_rows, out);
            } else {
                write_group_block(self.format, &self.decoded, b, out);
            }
        }
    }
}

/// One row decoded to `w = d * q + m` per 32-value block. For `Format::Q8` targets `q` holds the
/// `i8` values as bytes and `m` is zero; for `Format::Q4` and `Format::Q5` targets `nibbles`
/// holds each block's low four bits in ggml's order (value `i` low, value `i + 16` high) and `qh`
/// its fifth bits, which the 4- and 5-bit GGUF formats already store that way.
struct RowBlocks {
    d: Vec<f32>,
    m: Vec<f32>,
    q: Vec<u8>,
    nibbles: Vec<u8>,
    qh: Vec<u32>,
    /// Scratch for formats requantized from their exact values.
    values: Vec<f32>,
}

impl RowBlocks {
    fn new(cols: usize) -> RowBlocks {
        let blocks = cols / BLOCK;
        RowBlocks {
            d: vec![0.0; blocks],
            m: vec![0.0; blocks],
            q: vec![0; cols],
            nibbles: vec![0; cols / 2],
            qh: vec![0; blocks],
            values: Vec::new(),
        }
    }

    /// Decodes one row; `bytes` is exactly the row's blocks in `dtype`.
    fn decode(&mut self, dtype: GgmlDType, bytes: &[u8]) {
        match dtype {
            GgmlDType::Q8_0 => {
                for (b, block) in bytes.chunks_exact(34).enumerate() {
                    self.d[b] = f16_at(block, 0);
                    self.q[b * BLOCK..(b + 1) * BLOCK].copy_from_slice(&block[2..34]);
                }
            }
            GgmlDType::Q4_0 | GgmlDType::Q5_0 if target_format(dtype) == Some(Format::Q8) => {
                let (size, offset) = if dtype == GgmlDType::Q4_0 { (18, 8) } else { (22, 16) };
                for (b, block) in bytes.chunks_exact(size).enumerate() {
                    self.d[b] = f16_at(block, 0);
                    let (qh, qs) = if size == 22 { (u32_at(block, 2), &block[6..22]) } else { (0, &block[2..18]) };
                    let q = &mut self.q[b * BLOCK..(b + 1) * BLOCK];
                    for i in 0..16 {
                        let high = |bit: usize| (((qh >> bit) & 1) << 4) as u8;
                        q[i] = ((qs[i] & 0x0f) | high(i)).wrapping_sub(offset);
                        q[i + 16] = ((qs[i] >> 4) | high(i + 16)).wrapping_sub(offset);
                    }
                }
            }
            GgmlDType::Q4_0 => {
                for (b, block) in bytes.chunks_exact(18).enumerate() {
                    // w = d * (q - 8): exactly d * q + m with m = -8 d, and -8 d is exact in f16.
                    let d = f16_at(block, 0);
                    self.d[b] = d;
                    self.m[b] = -8.0 * d;
                    self.nibbles[b * 16..(b + 1) * 16].copy_from_slice(&block[2..18]);
                }
            }
            GgmlDType::Q4_1 => {
                for (b, block) in bytes.chunks_exact(20).enumerate() {
                    self.d[b] = f16_at(block, 0);
                    self.m[b] = f16_at(block, 2);
                    self.nibbles[b * 16..(b + 1) * 16].copy_from_slice(&block[4..20]);
                }
            }
            GgmlDType::Q5_0 => {
                for (b, block) in bytes.chunks_exact(22).enumerate() {
                    // w = d * (q - 16) = d * q - 16 d, exact in f16 like Q4_0's offset.
                    let d = f16_at(block, 0);
                    self.d[b] = d;
                    self.m[b] = -16.0 * d;
                    self.qh[b] = u32_at(block, 2);
                    self.nibbles[b * 16..(b + 1) * 16].copy_from_slice(&block[6..22]);
                }
            }
            GgmlDType::Q5_1 => {
                for (b, block) in bytes.chunks_exact(24).enumerate() {
                    self.d[b] = f16_at(block, 0);
                    self.m[b] = f16_at(block, 2);
                    self.qh[b] = u32_at(block, 4);
                    self.nibbles[b * 16..(b + 1) * 16].copy_from_slice(&block[8..24]);
                }
            }
            GgmlDType::Q4K | GgmlDType::Q5K => {
                let size = if dtype == GgmlDType::Q4K { 144 } else { 176 };
                for (s, block) in bytes.chunks_exact(size).enumerate() {
                    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
                    let scales = &block[4..16];
                    // Q5_K keeps its fifth bits as 32 bytes, bit `j` for sub-block `j`.
                    let (qh, qs) =
                        if size == 176 { (Some(&block[16..48]), &block[48..176]) } else { (None, &block[16..144]) };
                    for j in 0..QK_K / BLOCK {
                        let (sc, m) = scale_min_k4(j, scales);
                        let b = s * (QK_K / BLOCK) + j;
                        self.d[b] = d * f32::from(sc);
                        self.m[b] = -dmin * f32::from(m);
                        // Sub-blocks 2i and 2i+1 share 32 bytes: low nibbles, then high nibbles.
                        let chunk = &qs[(j / 2) * 32..(j / 2) * 32 + 32];
                        let shift = if j % 2 == 0 { 0 } else { 4 };
                        let nibbles = &mut self.nibbles[b * 16..(b + 1) * 16];
                        for i in 0..16 {
                            nibbles[i] = ((chunk[i] >> shift) & 0x0f) | (((chunk[i + 16] >> shift) & 0x0f) << 4);
                        }
                        if let Some(qh) = qh {
                            self.qh[b] = qh.iter().enumerate().fold(0, |h, (l, &v)| h | (u32::from((v >> j) & 1) << l));
                        }
                    }
                }
            }
            GgmlDType::Q6K => {
                self.values.resize(self.q.len(), 0.0);
                for (s, block) in bytes.chunks_exact(210).enumerate() {
                    dequantize_q6k(block, &mut self.values[s * QK_K..(s + 1) * QK_K]);
                }
                self.requantize();
            }
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                self.values.clear();
                match dtype {
                    GgmlDType::F32 => {
                        self.values.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    }
                    GgmlDType::F16 => self.values.extend(bytes.chunks_exact(2).map(|b| f16_at(b, 0))),
                    _ => self.values.extend(
                        bytes
                            .chunks_exact(2)
                            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)),
                    ),
                }
                self.requantize();
            }
            // `target_format` admits only the formats above.
            _ => {}
        }
    }

    /// Block `b` as scale, minimum and values, for the panel writer.
    fn block(&self, format: Format, b: usize, out: &mut RowBlock) {
        out.d = self.d[b];
        out.m = self.m[b];
        match format {
            Format::Q8 => {
                for (q, &v) in out.q.iter_mut().zip(&self.q[b * BLOCK..(b + 1) * BLOCK]) {
                    *q = v as i8;
                }
            }
            Format::Q4 | Format::Q5 => {
                let qh = if format == Format::Q5 { self.qh[b] } else { 0 };
                unpack_nibbles(&self.nibbles[b * 16..(b + 1) * 16], qh, &mut out.q);
            }
        }
    }

    /// Quantizes `values` to 8-bit blocks with `f32` scales.
    fn requantize(&mut self) {
        let mut qs = vec![0i8; self.values.len()];
        quantize_into(&self.values, &mut qs, &mut self.d);
        for (q, v) in self.q.iter_mut().zip(qs) {
            *q = v as u8;
        }
    }
}

/// Writes block `b` of four decoded rows in `format`'s group layout (see `Format`).
fn write_group_block(format: Format, rows: &[RowBlocks], b: usize, out: &mut [u8]) {
    match format {
        Format::Q8 => {
            for (lane, row) in rows.iter().enumerate() {
                out[lane * 4..lane * 4 + 4].copy_from_slice(&row.d[b].to_le_bytes());
                out[GROUP * 4 + lane * BLOCK..GROUP * 4 + (lane + 1) * BLOCK]
                    .copy_from_slice(&row.q[b * BLOCK..(b + 1) * BLOCK]);
            }
        }
        Format::Q4 | Format::Q5 => {
            let nibbles_at = if format == Format::Q5 { 16 + GROUP * 4 } else { 16 };
            for (lane, row) in rows.iter().enumerate() {
                out[lane * 2..lane * 2 + 2].copy_from_slice(&f32_to_f16(row.d[b]).to_le_bytes());
                out[8 + lane * 2..8 + lane * 2 + 2].copy_from_slice(&f32_to_f16(row.m[b]).to_le_bytes());
                out[nibbles_at + lane * 16..nibbles_at + (lane + 1) * 16]
                    .copy_from_slice(&row.nibbles[b * 16..(b + 1) * 16]);
                if format == Format::Q5 {
                    out[16 + lane * 4..16 + lane * 4 + 4].copy_from_slice(&row.qh[b].to_le_bytes());
                }
            }
        }
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K/Q5_K super-block (ggml's
/// `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// ggml's reference dequantization of one Q6_K super-block (`ql[128]`, `qh[64]`, `scales[16]`,
/// `d`).
fn dequantize_q6k(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 208);
    for half in 0..2 {
        let ql = &block[half * 64..half * 64 + 64];
        let qh = &block[128 + half * 32..128 + half * 32 + 32];
        let sc = &block[192 + half * 8..192 + half * 8 + 8];
        let y = &mut y[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let scale = |i: usize| d * f32::from(sc[i] as i8);
            y[l] = scale(is) * q1 as f32;
            y[l + 32] = scale(is + 2) * q2 as f32;
            y[l + 64] = scale(is + 4) * q3 as f32;
            y[l + 96] = scale(is + 6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::super::{Format, Kernel, PackedMatrix, Q8Rows, f16_to_f32, f32_to_f16, matmul_with, portable_dot};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Uneven magnitudes, so K-quant sub-block scales and minimums differ.
                let u = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                u * (1.0 + ((s >> 4) % 7) as f32)
            })
            .collect()
    }

    /// Candle's reference dequantization of a quantized tensor.
    fn reference(q: &QTensor) -> Vec<f32> {
        q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn f16_conversion_round_trips_and_rounds_to_nearest() {
        for bits in (0u16..0x7c00).chain(0x8000..0xfc00) {
            assert_eq!(f32_to_f16(f16_to_f32(bits)), bits, "{bits:#06x}");
        }
        assert_eq!(f32_to_f16(1.0 + 1.0 / 4096.0), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 / 4096.0), 0x3c01);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(1e-9), 0);
    }

    #[test]
    fn every_gguf_format_repacks_to_candles_dequantized_values() {
        // Exact formats must match bit for bit (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0); K-quants whose
        // sub-block scale `d * sc` and minimum `dmin * m` are rounded to f16 may differ by half an
        // f16 step (2^-11 relative) of each: at most 2^-11 * (15 d1 + m1) <= 1.5 * 2^-10 of the
        // block's largest magnitude, which is at least 7.5 d1 and at least m1. Q6_K is
        // requantized to 8 bits: half a step of `amax / 127` per value.
        // 8 rows are stored in groups of four, 32 in two panels of 16.
        for rows in [8, 32] {
            repacks_to_candles_values(rows, 512);
        }
    }

    fn repacks_to_candles_values(rows: usize, cols: usize) {
        let w = values(rows * cols, 11);
        let wt = Tensor::from_vec(w.clone(), (rows, cols), &Device::Cpu).unwrap();
        for (dtype, format, tolerance) in [
            (GgmlDType::Q8_0, Format::Q8, 0.0),
            (GgmlDType::Q4_0, Format::Q4, 0.0),
            (GgmlDType::Q4_1, Format::Q4, 0.0),
            (GgmlDType::Q5_0, Format::Q5, 0.0),
            (GgmlDType::Q5_1, Format::Q5, 0.0),
            (GgmlDType::Q4K, Format::Q4, 2.0 / 1024.0),
            (GgmlDType::Q5K, Format::Q5, 2.0 / 1024.0),
            (GgmlDType::Q6K, Format::Q8, 0.5 / 127.0 + 1e-6),
            (GgmlDType::F32, Format::Q8, 0.5 / 127.0 + 1e-6),
            (GgmlDType::F16, Format::Q8, 0.5 / 127.0 + 1e-3),
        ] {
            let q = QTensor::quantize(&wt, dtype).unwrap();
            let expected = reference(&q);
            let bytes = q.data().unwrap();
            let packed = PackedMatrix::from_gguf_bytes(dtype, &bytes, rows, cols).unwrap();
            assert_eq!(packed.format(), format, "{dtype:?}");
            assert_eq!(packed.panel, rows.is_multiple_of(16), "{dtype:?} {rows} rows");
            let mut row = vec![0f32; cols];
            for r in 0..rows {
                packed.row_into(r, &mut row);
                for (b, (got, want)) in row.chunks_exact(32).zip(expected[r * cols..].chunks_exact(32)).enumerate() {
                    let amax = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (i, (g, e)) in got.iter().zip(want).enumerate() {
                        // Exact formats: the same f32 operations as candle, so equal values.
                        let allowed = tolerance * amax.max(1e-30) + if tolerance == 0.0 { 1e-6 * amax } else { 0.0 };
                        assert!((g - e).abs() <= allowed, "{dtype:?} row {r} block {b} value {i}: {g} vs {e}");
                    }
                }
            }
            // The kernels on the repacked matrix agree with the portable product and with the
            // dequantized values, for one token (decode tiles) and several (prefill tiles).
            for m in [1, 2, 3, 4, 5, 7, 9, 17] {
                let x = values(m * cols, 12);
                let xq = Q8Rows::quantize(&x, m);
                for kernel in Kernel::available() {
                    let y = matmul_with(kernel, &xq, &packed);
                    for i in 0..m {
                        for c in 0..rows {
                            let exact: f32 = (0..cols).map(|k| x[i * cols + k] * expected[c * cols + k]).sum();
                            let norm: f32 = (0..cols).map(|k| (x[i * cols + k] * expected[c * cols + k]).abs()).sum();
                            let (got, portable) = (y[i * rows + c], portable_dot(&xq, i, &packed, c));
                            assert!(
                                (got - portable).abs() <= 1e-4 * norm.max(1.0),
                                "{kernel:?} {dtype:?} {m} {i},{c}: {got} vs {portable}"
                            );
                            assert!((got - exact).abs() <= 0.02 * norm + 1e-3, "{dtype:?} {i},{c}: {got} vs {exact}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_sizes_and_formats_without_a_packed_form_are_refused() {
        assert!(PackedMatrix::from_gguf_bytes(GgmlDType::Q5_0, &[0; 22 * 7], 4, 64).is_none());
        assert!(PackedMatrix::from_gguf_bytes(GgmlDType::Q5_0, &[0; 22 * 6], 3, 64).is_none());
        assert!(PackedMatrix::from_gguf_bytes(GgmlDType::Q4K, &[0; 144 * 4], 4, 128).is_none());
        assert!(PackedMatrix::from_gguf_bytes(GgmlDType::Q3K, &[0; 110 * 4], 4, 256).is_none());
        assert!(PackedMatrix::from_gguf_bytes(GgmlDType::Q5_0, &[0; 22 * 4], 4, 32).is_some());
    }
}
