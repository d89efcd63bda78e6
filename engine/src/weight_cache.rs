//! Packed weights cached on disk, so that only the first load of a model pays for repacking.
//!
//! Loading a GGUF converts every weight matrix into the kernels' layout (`kernels::convert`):
//! hundreds of megabytes written into fresh memory, which the operating system must zero first.
//! After the first load the packed matrices are written to one file per model and settings, and
//! later loads map that file instead: each matrix becomes a private, copy-on-write mapping of its
//! part of the file, so loading costs a few system calls, the pages come from the page cache, and
//! several processes that load the same model (one server per editor window) share one copy.
//!
//! A cache file is found by a hash of what decides its content: the model file's path, length and
//! modification time, Glint's version, the packing layout's version and the loader's settings. It
//! is written to a temporary name and renamed, so a reader sees a whole file or none; it is checked
//! (magic, key, every entry's bounds and length) before use, and any mismatch means "repack".
//! Files are never rewritten in place, only replaced or removed, so a mapped file stays intact.
//!
//! Layout: `GLINTPW1`, the header's length (u64, little endian), the header as JSON (the key and
//! one entry per matrix: name, rows, columns, format, panel layout, offset, length), then each
//! matrix's bytes at an offset aligned to 4 KiB.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kernels::PackedMatrix;

const MAGIC: &[u8; 8] = b"GLINTPW1";
/// Bumped whenever packed bytes could differ for the same model and settings.
const LAYOUT_VERSION: u32 = 1;
const ALIGN: u64 = 4096;
/// Models smaller than this load fast enough without a cache (and tests' tiny models stay out).
const MIN_MODEL_BYTES: u64 = 32 << 20;
/// Environment settings that change how weights are packed (benchmark switches).
const PACKING_ENV: [&str; 3] = ["GLINT_ROW_GROUPS", "GLINT_OFFSET_QUANTS_AS_Q8", "GLINT_CANDLE_KERNELS"];

#[derive(Serialize, Deserialize)]
struct Header {
    key: String,
    entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    name: String,
    rows: usize,
    cols: usize,
    format: u8,
    panel: bool,
    offset: u64,
    len: u64,
}

/// Where and under which key a model's packed weights are cached.
#[derive(Debug, Clone)]
pub(crate) struct CacheSlot {
    path: PathBuf,
    key: String,
    /// Cache files of the same model file under older keys start with this.
    model_prefix: String,
}

impl CacheSlot {
    /// The slot for `model` in `dir`, given the loader's settings; `None` for a small model or
    /// one whose file cannot be examined.
    pub(crate) fn new(dir: &Path, model: &Path, settings: &str) -> Option<CacheSlot> {
        let model = model.canonicalize().ok()?;
        let meta = std::fs::metadata(&model).ok()?;
        if meta.len() < MIN_MODEL_BYTES {
            return None;
        }
        let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
        let env: Vec<String> =
            PACKING_ENV.iter().map(|k| format!("{k}={}", std::env::var(k).unwrap_or_default())).collect();
        // The running binary's own identity too: a rebuilt Glint may pack differently even where
        // no one bumped `LAYOUT_VERSION`, and must then never read an older build's bytes.
        let exe = std::env::current_exe().and_then(std::fs::metadata).and_then(|m| m.modified()).ok();
        let exe = exe.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |t| t.as_nanos());
        let key = format!(
            "{}|{}|{modified}|glint {} build {exe}|layout {LAYOUT_VERSION}|{settings}|{}",
            model.display(),
            meta.len(),
            env!("CARGO_PKG_VERSION"),
            env.join(",")
        );
        let model_prefix = format!("{}-", &hex(model.to_string_lossy().as_bytes())[..16]);
        let path = dir.join(format!("{model_prefix}{}.weights", &hex(key.as_bytes())[..16]));
        Some(CacheSlot { path, key, model_prefix })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An opened, checked cache file.
pub(crate) struct WeightCache {
    file: File,
    entries: HashMap<String, Entry>,
}

impl WeightCache {
    /// Opens the slot's cache file; `None` if there is none or it does not match the slot (logged).
    pub(crate) fn open(slot: &CacheSlot) -> Option<WeightCache> {
        let mut file = File::open(&slot.path).ok()?;
        match WeightCache::read_header(&mut file, &slot.key) {
            Ok(entries) => Some(WeightCache { file, entries }),
            Err(why) => {
                tracing::info!(path = %slot.path.display(), "not using the packed weights cache: {why}");
                None
            }
        }
    }

    fn read_header(file: &mut File, key: &str) -> Result<HashMap<String, Entry>, String> {
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut start = [0u8; 16];
        file.read_exact(&mut start).map_err(|e| format!("cannot read its start: {e}"))?;
        if &start[..8] != MAGIC {
            return Err("not a packed weights file of this version".into());
        }
        let header_len = u64::from_le_bytes(start[8..16].try_into().unwrap_or_default());
        if header_len > file_len.saturating_sub(16) || header_len > 16 << 20 {
            return Err("its header is longer than the file".into());
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| format!("cannot read its header: {e}"))?;
        let header: Header = serde_json::from_slice(&header).map_err(|e| format!("its header is invalid: {e}"))?;
        if header.key != key {
            return Err("it was made for another model file or other settings".into());
        }
        let mut entries = HashMap::with_capacity(header.entries.len());
        for entry in header.entries {
            let end = entry.offset.checked_add(entry.len);
            if !entry.offset.is_multiple_of(ALIGN) || end.is_none_or(|end| end > file_len) {
                return Err(format!("its entry `{}` lies outside the file", entry.name));
            }
            entries.insert(entry.name.clone(), entry);
        }
        Ok(entries)
    }

    /// The cached matrix `name` if it has the expected shape, mapped from the file.
    pub(crate) fn matrix(&self, name: &str, rows: usize, cols: usize) -> Option<PackedMatrix> {
        let entry = self.entries.get(name).filter(|e| e.rows == rows && e.cols == cols)?;
        let len = usize::try_from(entry.len).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a private copy-on-write mapping of a file that Glint never modifies in place
        // (cache files are written whole under a temporary name and renamed); writes through it
        // would stay in this process. The range was checked against the file's length.
        let map = unsafe { memmap2::MmapOptions::new().offset(entry.offset).len(len).map_copy(&self.file) }.ok()?;
        PackedMatrix::from_mapped(entry.rows, entry.cols, entry.format, entry.panel, map)
    }
}

/// Writes the packed matrices (in order, by name) as the slot's cache file, replacing any older
/// cache of the same model file. Runs after a load, on a thread of its own.
pub(crate) fn write(slot: &CacheSlot, matrices: &[(String, Arc<PackedMatrix>)]) -> std::io::Result<()> {
    let dir = slot.path.parent().ok_or_else(|| std::io::Error::other("a cache path without a folder"))?;
    std::fs::create_dir_all(dir)?;
    // Offsets depend on the header's length, which depends on the offsets: lay the data out
    // after a header of a generous fixed size.
    let mut entries = Vec::with_capacity(matrices.len());
    let reserved = 256 + matrices.iter().map(|(name, _)| name.len() + 128).sum::<usize>() as u64;
    let mut offset = (16 + reserved).next_multiple_of(ALIGN);
    for (name, matrix) in matrices {
        let (rows, cols, format, panel) = matrix.layout();
        let len = matrix.bytes().len() as u64;
        entries.push(Entry { name: name.clone(), rows, cols, format, panel, offset, len });
        offset = (offset + len).next_multiple_of(ALIGN);
    }
    let header = serde_json::to_vec(&Header { key: slot.key.clone(), entries: entries.clone() })?;
    if header.len() as u64 > reserved {
        return Err(std::io::Error::other("the cache header outgrew its space"));
    }
    remove_abandoned_temps(dir);
    if another_writer(dir, &slot.model_prefix) {
        // Several servers started at once: one writes, the others map its file next time.
        return Ok(());
    }
    let temp = dir.join(format!(".{}{}.tmp", slot.model_prefix, std::process::id()));
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&temp)?);
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        let mut at = 16 + header.len() as u64;
        for (entry, (_, matrix)) in entries.iter().zip(matrices) {
            out.write_all(&vec![0u8; (entry.offset - at) as usize])?;
            out.write_all(matrix.bytes())?;
            at = entry.offset + entry.len;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temp, &slot.path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        return result;
    }
    // Older caches of this model file (it changed, or settings did) are dead weight now.
    if let Ok(read) = std::fs::read_dir(dir) {
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&slot.model_prefix) && entry.path() != slot.path {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Whether another process is writing a cache of the same model file now.
fn another_writer(dir: &Path, model_prefix: &str) -> bool {
    let Ok(read) = std::fs::read_dir(dir) else { return false };
    read.flatten().any(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        name.starts_with(&format!(".{model_prefix}")) && name.ends_with(".tmp")
    })
}

/// Removes temporary files that no writer has touched for ten minutes (a process that exited
/// while writing its cache).
fn remove_abandoned_temps(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(600)));
        if name.starts_with('.') && name.ends_with(".tmp") && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    fn matrix(seed: u8, rows: usize, cols: usize) -> PackedMatrix {
        let bytes: Vec<u8> =
            (0..rows * cols / 32 * 34).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        // Q8_0 blocks: a 2-byte scale then 32 values; keep scales finite.
        let mut bytes = bytes;
        for block in bytes.chunks_exact_mut(34) {
            block[0] = 0;
            block[1] = 0x3c;
        }
        PackedMatrix::from_gguf_bytes(GgmlDType::Q8_0, &bytes, rows, cols).unwrap()
    }

    fn slot(dir: &Path, model_len: u64) -> CacheSlot {
        let model = dir.join("model.gguf");
        let file = File::create(&model).unwrap();
        file.set_len(model_len).unwrap();
        CacheSlot::new(dir, &model, "convert").unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glint-weight-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_cache_maps_back_the_same_matrices() {
        let dir = temp_dir("roundtrip");
        let slot = slot(&dir, MIN_MODEL_BYTES);
        let a = Arc::new(matrix(1, 32, 64));
        let b = Arc::new(matrix(2, 16, 96));
        write(&slot, &[("a".into(), Arc::clone(&a)), ("b".into(), Arc::clone(&b))]).unwrap();
        let cache = WeightCache::open(&slot).expect("the cache opens");
        let a2 = cache.matrix("a", 32, 64).unwrap();
        let b2 = cache.matrix("b", 16, 96).unwrap();
        assert_eq!(a2.layout(), a.layout());
        assert_eq!(a2.bytes(), a.bytes());
        assert_eq!(b2.bytes(), b.bytes());
        assert!(cache.matrix("a", 16, 64).is_none(), "a shape that differs is a miss");
        assert!(cache.matrix("c", 32, 64).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_changed_model_file_or_a_damaged_cache_is_not_used() {
        let dir = temp_dir("stale");
        let slot1 = slot(&dir, MIN_MODEL_BYTES);
        write(&slot1, &[("a".into(), Arc::new(matrix(1, 32, 64)))]).unwrap();
        // The model file changes: a new key, a new file name, and the old cache is removed on write.
        let slot2 = slot(&dir, MIN_MODEL_BYTES + 1);
        assert_ne!(slot1.path, slot2.path);
        assert!(WeightCache::open(&slot2).is_none());
        write(&slot2, &[("a".into(), Arc::new(matrix(3, 32, 64)))]).unwrap();
        assert!(!slot1.path.exists(), "the stale cache of the same model file is removed");
        // A truncated cache: its entries no longer fit the file.
        let len = std::fs::metadata(&slot2.path).unwrap().len();
        File::options().write(true).open(&slot2.path).unwrap().set_len(len - 100).unwrap();
        assert!(WeightCache::open(&slot2).is_none());
        // Garbage.
        std::fs::write(&slot2.path, b"GLINTPW1\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
        assert!(WeightCache::open(&slot2).is_none());
        std::fs::write(&slot2.path, b"").unwrap();
        assert!(WeightCache::open(&slot2).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn small_models_are_not_cached() {
        let dir = temp_dir("small");
        let model = dir.join("tiny.gguf");
        std::fs::write(&model, b"tiny").unwrap();
        assert!(CacheSlot::new(&dir, &model, "").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
