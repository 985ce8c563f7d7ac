//! Unpacking an HTTP-fetched archive into the model directory (sync; run off the reactor).

use std::fs::File;
use std::path::Path;

/// The archive formats we unpack; anything else is copied as one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    TarGz,
    Tar,
    Zip,
}

impl ArchiveKind {
    /// Decided by the file name, as KServe's storage initializer does.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if lower.ends_with(".tar") {
            Some(Self::Tar)
        } else if lower.ends_with(".zip") {
            Some(Self::Zip)
        } else {
            None
        }
    }
}

/// Unpacks `file` into `dest`. Entries that would land outside `dest` are refused by the
/// `tar` and `zip` crates themselves (they skip `..` and absolute names).
pub fn unpack(kind: ArchiveKind, file: &Path, dest: &Path) -> Result<(), String> {
    let f = File::open(file).map_err(|e| e.to_string())?;
    match kind {
        ArchiveKind::TarGz => tar::Archive::new(flate2::read::GzDecoder::new(f))
            .unpack(dest)
            .map_err(|e| e.to_string()),
        ArchiveKind::Tar => tar::Archive::new(f).unpack(dest).map_err(|e| e.to_string()),
        ArchiveKind::Zip => zip::ZipArchive::new(f)
            .and_then(|mut z| z.extract(dest))
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            ArchiveKind::from_name("model.TAR.GZ"),
            Some(ArchiveKind::TarGz)
        );
        assert_eq!(ArchiveKind::from_name("m.tgz"), Some(ArchiveKind::TarGz));
        assert_eq!(ArchiveKind::from_name("m.tar"), Some(ArchiveKind::Tar));
        assert_eq!(ArchiveKind::from_name("m.zip"), Some(ArchiveKind::Zip));
        assert_eq!(ArchiveKind::from_name("model.joblib"), None);
    }

    #[test]
    fn tar_gz_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("m.tar.gz");
        {
            let enc = flate2::write::GzEncoder::new(
                File::create(&tgz).unwrap(),
                flate2::Compression::fast(),
            );
            let mut b = tar::Builder::new(enc);
            let data = b"weights";
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, "sub/model.bin", &data[..]).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let out = dir.path().join("out");
        unpack(ArchiveKind::TarGz, &tgz, &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("sub/model.bin")).unwrap(),
            b"weights"
        );

        let junk = dir.path().join("junk.zip");
        std::fs::write(&junk, b"not a zip").unwrap();
        assert!(
            !unpack(ArchiveKind::Zip, &junk, &out)
                .unwrap_err()
                .is_empty()
        );
        assert!(unpack(ArchiveKind::Tar, &dir.path().join("missing.tar"), &out).is_err());
    }
}
