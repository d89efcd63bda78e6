//! Reading GGUF model files: header and metadata through candle's parser, plus the checks that turn
//! a corrupt or truncated file into an error naming the file and the problem.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use crate::EngineError;

/// An open GGUF file whose header has been read and whose tensor table fits inside the file.
///
/// The file is memory-mapped for as long as this lives (while a model loads): tensors are
/// converted straight from the page cache, on several threads, with no copy in between.
pub(crate) struct GgufFile {
    path: PathBuf,
    content: Content,
    map: memmap2::Mmap,
}

impl GgufFile {
    /// Opens `path`, parses the header and checks that every tensor lies within the file.
    pub(crate) fn open(path: &Path) -> Result<GgufFile, EngineError> {
        let file = File::open(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        let file_len = file.metadata().map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?.len();
        let io = |source| EngineError::Io { path: path.to_path_buf(), source };
        // SAFETY: the mapping is read-only and private, and lives only while the model loads. A
        // file truncated by another process meanwhile would fault on access, as it would under
        // any engine that maps model files; Glint's own downloads replace files by renaming, which
        // leaves a mapped file intact.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io)?;
        let mut reader = Cursor::new(&map[..]);
        let invalid = |message: String| EngineError::InvalidModel { path: path.to_path_buf(), message };
        // candle's parser divides by `general.alignment` without checking it for zero. Read the
        // metadata first so that such a file never reaches it: a panic hook may abort the process
        // (a fuzzer's does), so catching the panic below is only the second line.
        match declared_alignment(&map) {
            Ok(Some(0)) => {
                return Err(invalid(format!(
                    "not a readable GGUF file ({file_len} bytes): its header declares `general.alignment` 0"
                )));
            }
            Ok(_) => {}
            Err(problem) => return Err(invalid(format!("not a readable GGUF file ({file_len} bytes): {problem}"))),
        }
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader)));
        let content = match parsed {
            Ok(Ok(content)) => content,
            Ok(Err(e)) => return Err(invalid(format!("not a readable GGUF file ({file_len} bytes): {e}"))),
            Err(_) => {
                return Err(invalid(format!(
                    "not a readable GGUF file ({file_len} bytes): its header is inconsistent (for example `general.alignment` is 0)"
                )));
            }
        };
        let gguf = GgufFile { path: path.to_path_buf(), content, map };
        gguf.check_tensor_bounds(file_len)?;
        Ok(gguf)
    }

    fn check_tensor_bounds(&self, file_len: u64) -> Result<(), EngineError> {
        for (name, info) in &self.content.tensor_infos {
            // Dimensions come from the file: multiply with overflow checks before trusting them.
            let elements = info.shape.dims().iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            let Some(elements) = elements else {
                return Err(self.invalid(format!("tensor `{name}` has an impossible shape {:?}", info.shape.dims())));
            };
            let block = info.ggml_dtype.block_size();
            if block == 0 || !elements.is_multiple_of(block) {
                return Err(self.invalid(format!(
                    "tensor `{name}` has {elements} elements, not a multiple of its block size {block}"
                )));
            }
            let end = ((elements / block) as u64)
                .checked_mul(info.ggml_dtype.type_size() as u64)
                .and_then(|bytes| bytes.checked_add(info.offset))
                .and_then(|end| end.checked_add(self.content.tensor_data_offset));
            let Some(_) = end.filter(|&end| end <= file_len) else {
                return Err(self.invalid(format!(
                    "the file is truncated: tensor `{name}` ends past byte {file_len}, the end of the file"
                )));
            };
        }
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// An `InvalidModel` error for this file.
    pub(crate) fn invalid(&self, message: impl Into<String>) -> EngineError {
        EngineError::InvalidModel { path: self.path.clone(), message: message.into() }
    }

    fn value(&self, key: &str) -> Result<&Value, EngineError> {
        self.content.metadata.get(key).ok_or_else(|| self.invalid(format!("metadata key `{key}` is missing")))
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, EngineError> {
        self.value(key)?.to_string().cloned().map_err(|e| self.invalid(format!("metadata `{key}`: {e}")))
    }

    pub(crate) fn opt_string(&self, key: &str) -> Option<String> {
        self.content.metadata.get(key).and_then(|v| v.to_string().ok().cloned())
    }

    /// An unsigned integer of any width.
    pub(crate) fn uint(&self, key: &str) -> Result<usize, EngineError> {
        let value = self.value(key)?;
        let n = match value {
            Value::U8(v) => Some(u64::from(*v)),
            Value::U16(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::I8(v) => u64::try_from(*v).ok(),
            Value::I16(v) => u64::try_from(*v).ok(),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.invalid(format!("metadata `{key}` is not an unsigned integer")))
    }

    pub(crate) fn opt_uint(&self, key: &str) -> Option<usize> {
        self.has(key).then(|| self.uint(key).ok()).flatten()
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Option<bool> {
        self.content.metadata.get(key).and_then(|v| v.to_bool().ok())
    }

    pub(crate) fn opt_f32(&self, key: &str) -> Option<f32> {
        match self.content.metadata.get(key)? {
            Value::F32(v) => Some(*v),
            Value::F64(v) => Some(*v as f32),
            _ => None,
        }
    }

    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, EngineError> {
        let values = self.value(key)?.to_vec().map_err(|e| self.invalid(format!("metadata `{key}`: {e}")))?;
        values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| self.invalid(format!("metadata `{key}`: {e}"))))
            .collect()
    }

    pub(crate) fn opt_ints(&self, key: &str) -> Option<Vec<i64>> {
        let values = self.content.metadata.get(key)?.to_vec().ok()?;
        values
            .iter()
            .map(|v| match v {
                Value::I32(x) => Some(i64::from(*x)),
                Value::U32(x) => Some(i64::from(*x)),
                Value::I8(x) => Some(i64::from(*x)),
                Value::U8(x) => Some(i64::from(*x)),
                Value::I64(x) => Some(*x),
                _ => None,
            })
            .collect()
    }

    /// Tensors in the file.
    pub(crate) fn tensor_count(&self) -> usize {
        self.content.tensor_infos.len()
    }

    pub(crate) fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The shape of a tensor in candle's order (rows last-but-one, columns last).
    pub(crate) fn tensor_dims(&self, name: &str) -> Option<Vec<usize>> {
        self.content.tensor_infos.get(name).map(|info| info.shape.dims().to_vec())
    }

    /// The format and shape (candle's order) of a tensor.
    pub(crate) fn tensor_info(&self, name: &str) -> Result<(GgmlDType, Vec<usize>), EngineError> {
        let info =
            self.content.tensor_infos.get(name).ok_or_else(|| self.invalid(format!("tensor `{name}` is missing")))?;
        Ok((info.ggml_dtype, info.shape.dims().to_vec()))
    }

    /// A tensor's bytes in the file (checked against the file's length when it was opened).
    pub(crate) fn tensor_bytes(&self, name: &str) -> Result<&[u8], EngineError> {
        let info =
            self.content.tensor_infos.get(name).ok_or_else(|| self.invalid(format!("tensor `{name}` is missing")))?;
        let elements: usize = info.shape.dims().iter().product();
        let len = elements / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let start = self.content.tensor_data_offset.checked_add(info.offset).and_then(|at| usize::try_from(at).ok());
        start
            .and_then(|start| self.map.get(start..start.checked_add(len)?))
            .ok_or_else(|| self.invalid(format!("tensor `{name}` lies beyond the end of the file")))
    }

    /// Tells the kernel this process is done with the bytes of every tensor whose name starts with
    /// `prefix` (its pages leave the process's resident memory; the page cache keeps them). A load
    /// that packs weights calls it as it goes, so the file's pages and the packed copy are not
    /// both resident at the end of a first load. Reading those bytes again still works: they fault
    /// back in from the file.
    #[cfg(unix)]
    pub(crate) fn release(&self, prefix: &str) {
        let page = page_size();
        for name in self.content.tensor_infos.keys() {
            if !name.starts_with(prefix) {
                continue;
            }
            let Ok(bytes) = self.tensor_bytes(name) else { continue };
            let start = bytes.as_ptr() as usize - self.map.as_ptr() as usize;
            let (first, end) = (start.next_multiple_of(page), (start + bytes.len()) / page * page);
            if end > first {
                // SAFETY: the mapping is a read-only private mapping of the file that nothing in
                // this process ever writes, so dropping its pages loses nothing: a later read of
                // the range faults in the file's unchanged bytes. The range lies inside the map.
                let _ =
                    unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first) };
            }
        }
    }

    /// Elsewhere the pages stay until the load ends.
    #[cfg(not(unix))]
    pub(crate) fn release(&self, _prefix: &str) {}

    /// Reads one tensor as a candle tensor, in its own format.
    pub(crate) fn tensor(&self, name: &str) -> Result<QTensor, EngineError> {
        if !self.has_tensor(name) {
            return Err(self.invalid(format!("tensor `{name}` is missing")));
        }
        let tensor = self.content.tensor(&mut Cursor::new(&self.map[..]), name, &Device::Cpu).map_err(|e| {
            EngineError::InvalidModel { path: self.path.clone(), message: format!("cannot read tensor `{name}`: {e}") }
        })?;
        Ok(tensor)
    }

    /// Reads one tensor as f32 values (for norms and biases).
    pub(crate) fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, EngineError> {
        let tensor = self.tensor(name)?;
        let values = tensor
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.invalid(format!("cannot dequantize tensor `{name}`: {e}")))?;
        Ok(values)
    }
}

/// The `general.alignment` a GGUF file declares (the last one, as candle keeps the last of a
/// repeated key), when it is one of the integer types candle reads it as. Walks the header and the
/// metadata only, with every length checked against the bytes there are.
fn declared_alignment(bytes: &[u8]) -> Result<Option<u64>, String> {
    let mut at = Walker { bytes, at: 0 };
    if at.take(4)? != b"GGUF" {
        return Err("it does not start with `GGUF`".into());
    }
    let version = at.u32()?;
    let wide = match version {
        1 => false,
        2 | 3 => true,
        other => return Err(format!("GGUF version {other} is not supported")),
    };
    let _tensors = at.length(wide)?;
    let entries = at.length(wide)?;
    let mut alignment = None;
    for _ in 0..entries {
        let key = at.string(wide)?;
        let kind = at.u32()?;
        let value = at.value(kind, wide, 0)?;
        if key == b"general.alignment" {
            alignment = value;
        }
    }
    Ok(alignment)
}

/// A cursor over a GGUF header that fails, rather than panics, past the end.
struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Walker<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n).ok().and_then(|n| self.at.checked_add(n)).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("its metadata runs past the end of the file at byte {}", self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let bytes = self.take(8)?;
        let mut word = [0; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    }

    /// A count or a string length: 32 bits in version 1, 64 after.
    fn length(&mut self, wide: bool) -> Result<u64, String> {
        if wide { self.u64() } else { self.u32().map(u64::from) }
    }

    fn string(&mut self, wide: bool) -> Result<&'a [u8], String> {
        let len = self.length(wide)?;
        self.take(len)
    }

    /// Skips one value of type `kind`; its value when it is an integer candle would read as an
    /// alignment (8, 16 or 32 bits; negative ones it ignores).
    fn value(&mut self, kind: u32, wide: bool, depth: u32) -> Result<Option<u64>, String> {
        if kind > 12 {
            return Err(format!("its metadata holds a value of unknown type {kind}"));
        }
        let size = fixed_size(kind);
        if let Some(size) = size {
            let bytes = self.take(size)?;
            let value = match kind {
                0 => Some(u64::from(bytes[0])),
                1 => u64::try_from(i8::from_le_bytes([bytes[0]])).ok(),
                2 => Some(u64::from(u16::from_le_bytes([bytes[0], bytes[1]]))),
                3 => u64::try_from(i16::from_le_bytes([bytes[0], bytes[1]])).ok(),
                4 => Some(u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))),
                5 => u64::try_from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).ok(),
                _ => None,
            };
            return Ok(value);
        }
        if kind == 8 {
            self.string(wide)?;
            return Ok(None);
        }
        // An array: its element type, its length, its elements.
        if depth >= 8 {
            return Err("its metadata nests arrays more than 8 deep".into());
        }
        let element = self.u32()?;
        let len = self.length(wide)?;
        let element_size = fixed_size(element);
        match element_size {
            Some(size) => {
                let total = len.checked_mul(size).ok_or("its metadata holds an impossibly long array")?;
                self.take(total)?;
            }
            // Strings and arrays: each takes at least one byte, so a lying length ends at the
            // end of the file rather than looping for long.
            None => {
                for _ in 0..len {
                    self.value(element, wide, depth + 1)?;
                }
            }
        }
        Ok(None)
    }
}

/// The size of a GGUF metadata value of type `kind` when it has a fixed one (not a string or an
/// array).
fn fixed_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// The memory page size (4 KiB where the system does not say).
#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: `sysconf` only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::declared_alignment;

    const VALID: &[u8] = include_bytes!("../../fuzz/corpus/gguf/seed-valid-qwen2");
    const ZERO_ALIGNMENT: &[u8] = include_bytes!("../../fuzz/corpus/gguf/seed-zero-alignment");

    #[test]
    fn released_tensors_still_read_the_same_bytes() {
        let path = std::env::temp_dir().join(format!("glint-release-{}.gguf", std::process::id()));
        std::fs::write(&path, VALID).unwrap();
        let gguf = super::GgufFile::open(&path).unwrap();
        let names: Vec<String> = gguf.content.tensor_infos.keys().cloned().collect();
        assert!(!names.is_empty());
        let before: Vec<Vec<u8>> = names.iter().map(|n| gguf.tensor_bytes(n).unwrap().to_vec()).collect();
        gguf.release("blk.0.");
        gguf.release("");
        let after: Vec<Vec<u8>> = names.iter().map(|n| gguf.tensor_bytes(n).unwrap().to_vec()).collect();
        assert_eq!(before, after);
        drop(gguf);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_declared_alignment_is_read_without_candle() {
        assert_eq!(declared_alignment(VALID), Ok(None));
        assert_eq!(declared_alignment(ZERO_ALIGNMENT), Ok(Some(0)));
    }

    #[test]
    fn a_truncated_or_garbled_header_is_an_error_not_a_panic() {
        // Every cut inside the metadata is an error; the tensor table and data are not read.
        let mut errors = 0;
        for len in 0..VALID.len() {
            if declared_alignment(&VALID[..len]).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 100, "cuts inside the metadata are errors ({errors})");
        assert!(declared_alignment(b"GGML\x03\0\0\0").unwrap_err().contains("GGUF"));
        // A version-3 header claiming 2^64-1 entries, and a key longer than the file.
        let mut lying = b"GGUF\x03\0\0\0".to_vec();
        lying.extend_from_slice(&0u64.to_le_bytes());
        lying.extend_from_slice(&u64::MAX.to_le_bytes());
        lying.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(declared_alignment(&lying).unwrap_err().contains("past the end"));
        // Every single-byte change either reads or errs.
        for at in 0..VALID.len().min(2048) {
            let mut garbled = VALID.to_vec();
            garbled[at] ^= 0xA5;
            let _ = declared_alignment(&garbled);
        }
    }
}
