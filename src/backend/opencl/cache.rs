//! The on-disk cache of compiled OpenCL programs.
//!
//! An entry is keyed by the SHA-256 of the device's identity (platform,
//! device, driver and OpenCL versions), the build options and the source,
//! so a new driver or an edited kernel misses the cache instead of loading
//! a stale binary. Each file holds a magic line, the SHA-256 of the binary
//! and the binary; an entry whose checksum does not match (a torn write, a
//! flipped bit) is reported as corrupt, deleted and rebuilt. Files are
//! written to a temporary name and renamed, so readers never see half an
//! entry.
//!
//! The directory is `$XPU_CACHE_DIR/opencl`, else
//! `$XDG_CACHE_HOME/xpu/opencl`, else `~/.cache/xpu/opencl`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"xpu-opencl-program-v1\n";

/// Where the runtime keeps its caches, when it can tell.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XPU_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("xpu")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache").join("xpu")))
}

/// What a lookup found.
pub(super) enum Lookup {
    Hit(Vec<u8>),
    Miss,
    /// The entry existed but failed its checksum; it has been removed.
    Corrupt,
}

/// Program binaries on disk, in `dir` (no caching when `None`).
pub(super) struct ProgramCache {
    dir: Option<PathBuf>,
}

impl ProgramCache {
    /// A cache in `root/opencl`.
    pub fn new(root: Option<&Path>) -> ProgramCache {
        ProgramCache {
            dir: root.map(|r| r.join("opencl")),
        }
    }

    /// The key of a program for a device.
    pub fn key(device_identity: &str, options: &str, source: &str) -> String {
        let mut h = Sha256::new();
        for part in [device_identity, options, source] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex(&h.finalize())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.bin")))
    }

    pub fn load(&self, key: &str) -> Lookup {
        let Some(path) = self.path(key) else {
            return Lookup::Miss;
        };
        let Ok(bytes) = std::fs::read(&path) else {
            return Lookup::Miss;
        };
        let body = bytes.strip_prefix(MAGIC).filter(|b| b.len() >= 32);
        if let Some(body) = body {
            let (sum, binary) = body.split_at(32);
            if Sha256::digest(binary).as_slice() == sum && !binary.is_empty() {
                return Lookup::Hit(binary.to_vec());
            }
        }
        // Removing may fail (read-only cache); the rebuilt entry then
        // replaces it on store, or the cache is simply not used.
        let _ = std::fs::remove_file(&path);
        Lookup::Corrupt
    }

    /// Stores a binary; failures (read-only or full disk) only lose the
    /// cache, so they are returned for the caller to report, not to fail on.
    pub fn store(&self, key: &str, binary: &[u8]) -> std::io::Result<()> {
        let (Some(dir), Some(path)) = (self.dir.as_ref(), self.path(key)) else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        // A name no other writer uses: units of one process may store the
        // same program at once.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            "{key}.{}.{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let mut data = Vec::with_capacity(MAGIC.len() + 32 + binary.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&Sha256::digest(binary));
        data.extend_from_slice(binary);
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, &path)
    }

    /// The cache directory, if caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let root = std::env::temp_dir().join(format!("xpu-cache-test-{}", std::process::id()));
        let cache = ProgramCache::new(Some(&root));
        let key = ProgramCache::key("dev", "-DX", "kernel void f() {}");
        assert_ne!(key, ProgramCache::key("dev2", "-DX", "kernel void f() {}"));
        assert!(matches!(cache.load(&key), Lookup::Miss));
        cache.store(&key, b"binary bytes").unwrap();
        assert!(matches!(cache.load(&key), Lookup::Hit(b) if b == b"binary bytes"));
        let path = cache.path(&key).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(cache.load(&key), Lookup::Corrupt));
        assert!(!path.exists(), "a corrupt entry is removed");
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(cache.load(&key), Lookup::Corrupt));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
