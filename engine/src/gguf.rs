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
        // candle's parser divides by `general.alignment` without checking it for zero; a file is
        // untrusted input, so a panic in the parser becomes an error like any other bad header.
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
