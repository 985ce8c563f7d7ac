//! Unpacking an HTTP-fetched archive into the model directory (sync; run off the reactor).
//!
//! An archive is data from elsewhere, so nothing in it may reach outside `dest` (issue 11,
//! "zip slip"): every entry name must be relative without `..` ([`paths::relative`]), a
//! symbolic link must point inside `dest` (checked on its text when it is read, and on the
//! real file system once everything is unpacked, which also catches chains such as `c -> .`
//! plus `e -> c/..`), a hard link must name an entry of the archive, no entry may be written
//! through or over a link, and devices and FIFOs are refused. The first offending entry
//! refuses the whole archive with an [`ArchiveError`] naming it; a link already created that
//! points out is removed first.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::paths;

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

/// Why an archive was not unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a readable archive of its kind (corrupt, truncated), or a write failed.
    #[error("{0}")]
    Read(String),
    /// An entry's name is absolute, climbs out with `..`, or is otherwise unusable.
    #[error("refusing entry {entry:?}: {reason}")]
    UnsafeName { entry: String, reason: &'static str },
    /// A symbolic or hard link that points outside the model directory.
    #[error("refusing link {entry:?} -> {target:?}: {reason}")]
    LinkOutside {
        entry: String,
        target: String,
        reason: &'static str,
    },
    /// An entry would be written through, or replace, a link the archive made.
    #[error("refusing entry {entry:?}: it would write through the link {link:?}")]
    ThroughLink { entry: String, link: String },
    /// A device, FIFO or other special file.
    #[error("refusing entry {entry:?}: {kind} entries are not unpacked")]
    Unsupported { entry: String, kind: &'static str },
}

fn read_err(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Read(e.to_string())
}

/// Unpacks `file` into `dest` (created if missing), refusing anything that escapes it.
pub fn unpack(kind: ArchiveKind, file: &Path, dest: &Path) -> Result<(), ArchiveError> {
    let f = File::open(file).map_err(read_err)?;
    std::fs::create_dir_all(dest).map_err(read_err)?;
    let mut guard = Guard::new(dest)?;
    match kind {
        ArchiveKind::TarGz => unpack_tar(
            tar::Archive::new(flate2::read::GzDecoder::new(f)),
            &mut guard,
        )?,
        ArchiveKind::Tar => unpack_tar(tar::Archive::new(f), &mut guard)?,
        ArchiveKind::Zip => unpack_zip(f, &mut guard)?,
    }
    guard.check_links()
}

fn unpack_tar<R: Read>(
    mut archive: tar::Archive<R>,
    guard: &mut Guard,
) -> Result<(), ArchiveError> {
    use tar::EntryType as T;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader | T::XHeader) {
            continue;
        }
        let Some(rel) = guard.name(&name)? else {
            continue; // `./`: the directory itself
        };
        match kind {
            T::Regular | T::Continuous | T::GNUSparse | T::Directory => {}
            T::Symlink | T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if kind == T::Symlink {
                    guard.symlink_target(&name, &rel, &target)?;
                } else {
                    // a hard link names another entry of the archive, from its root
                    paths::relative(&target).map_err(|_| ArchiveError::LinkOutside {
                        entry: name.clone(),
                        target: target.clone(),
                        reason: "a hard link must name an entry of the archive",
                    })?;
                }
            }
            T::Char | T::Block => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "device",
                });
            }
            T::Fifo => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "FIFO",
                });
            }
            _ => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "special",
                });
            }
        }
        guard.before_write(&name, &rel)?;
        // `tar` checks again that the entry's parent is inside `dest`; we never mean to skip
        let unpacked = entry.unpack_in(&guard.dest).map_err(read_err)?;
        if !unpacked {
            return Err(ArchiveError::UnsafeName {
                entry: name,
                reason: "outside the model directory",
            });
        }
        if kind == T::Symlink {
            guard.created_link(&name, rel)?;
        }
    }
    Ok(())
}

fn unpack_zip(f: File, guard: &mut Guard) -> Result<(), ArchiveError> {
    let mut zip = zip::ZipArchive::new(f).map_err(read_err)?;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(read_err)?;
        let name = file.name().map_err(read_err)?.into_owned();
        let Some(rel) = guard.name(&name)? else {
            continue;
        };
        let path = guard.dest.join(&rel);
        if file.is_dir() {
            guard.before_write(&name, &rel)?;
            std::fs::create_dir_all(&path).map_err(read_err)?;
            continue;
        }
        if file.is_symlink() {
            let mut target = String::new();
            file.read_to_string(&mut target).map_err(read_err)?;
            guard.symlink_target(&name, &rel, &target)?;
            guard.before_write(&name, &rel)?;
            create_parent(&path)?;
            std::os::unix::fs::symlink(&target, &path).map_err(read_err)?;
            guard.created_link(&name, rel)?;
            continue;
        }
        guard.before_write(&name, &rel)?;
        create_parent(&path)?;
        let mut out = File::create(&path).map_err(read_err)?;
        std::io::copy(&mut file, &mut out).map_err(read_err)?;
        if let Some(mode) = file.unix_mode() {
            use std::os::unix::fs::PermissionsExt as _;
            // permission bits only: no setuid/setgid/sticky from an archive
            let perms = std::fs::Permissions::from_mode(mode & 0o777);
            std::fs::set_permissions(&path, perms).map_err(read_err)?;
        }
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<(), ArchiveError> {
    match path.parent() {
        Some(p) => std::fs::create_dir_all(p).map_err(read_err),
        None => Ok(()),
    }
}

/// Keeps an unpack inside `dest`.
struct Guard {
    dest: PathBuf,
    /// `dest` with every link resolved.
    real: PathBuf,
    /// The links made so far (archive name, relative path).
    links: Vec<(String, PathBuf)>,
}

impl Guard {
    fn new(dest: &Path) -> Result<Self, ArchiveError> {
        Ok(Self {
            dest: dest.to_owned(),
            real: dest.canonicalize().map_err(read_err)?,
            links: Vec::new(),
        })
    }

    /// The entry's path under `dest`; `None` for the archive's root (`./`).
    fn name(&self, name: &str) -> Result<Option<PathBuf>, ArchiveError> {
        let trimmed = name.trim_end_matches('/');
        if trimmed.is_empty() && name.starts_with('/') {
            return Err(ArchiveError::UnsafeName {
                entry: name.to_owned(),
                reason: "absolute name",
            });
        }
        if trimmed.is_empty()
            || Path::new(trimmed)
                .components()
                .all(|c| c == Component::CurDir)
        {
            return Ok(None);
        }
        paths::relative(trimmed)
            .map(Some)
            .map_err(|reason| ArchiveError::UnsafeName {
                entry: name.to_owned(),
                reason,
            })
    }

    /// A symbolic link at `rel` pointing at `target` stays inside `dest` (on its text:
    /// relative, and `..` never climbs above the top).
    fn symlink_target(&self, name: &str, rel: &Path, target: &str) -> Result<(), ArchiveError> {
        let refuse = |reason| ArchiveError::LinkOutside {
            entry: name.to_owned(),
            target: target.to_owned(),
            reason,
        };
        if target.is_empty() || target.contains('\0') {
            return Err(refuse("an empty link"));
        }
        let t = Path::new(target);
        if t.is_absolute() {
            return Err(refuse("an absolute link"));
        }
        // the link's folder, as a depth below `dest`
        let mut depth = rel.components().count().saturating_sub(1);
        for c in t.components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir if depth == 0 => {
                    return Err(refuse("points outside the model directory"));
                }
                Component::ParentDir => depth -= 1,
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse("an absolute link"));
                }
            }
        }
        Ok(())
    }

    /// Before anything is written at `rel`: its folder, with links resolved, is inside
    /// `dest`, and `rel` itself is not a link (a file written there would land where it
    /// points).
    fn before_write(&self, name: &str, rel: &Path) -> Result<(), ArchiveError> {
        let path = self.dest.join(rel);
        if let Some((link, _)) = self.links.iter().find(|(_, l)| rel.starts_with(l)) {
            return Err(ArchiveError::ThroughLink {
                entry: name.to_owned(),
                link: link.clone(),
            });
        }
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ArchiveError::ThroughLink {
                entry: name.to_owned(),
                link: name.to_owned(),
            });
        }
        // the nearest existing folder above it
        let mut dir = path.parent();
        while let Some(d) = dir {
            if let Ok(real) = d.canonicalize() {
                if real.starts_with(&self.real) {
                    return Ok(());
                }
                return Err(ArchiveError::UnsafeName {
                    entry: name.to_owned(),
                    reason: "its folder is outside the model directory",
                });
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn created_link(&mut self, name: &str, rel: PathBuf) -> Result<(), ArchiveError> {
        self.links.push((name.to_owned(), rel));
        // a link that resolves already is checked now (chains of links)
        self.check_link(self.links.len() - 1, false)
    }

    /// Every link made resolves, on the file system, to a path inside `dest`.
    fn check_links(&self) -> Result<(), ArchiveError> {
        (0..self.links.len()).try_for_each(|i| self.check_link(i, true))
    }

    /// A link that points out is removed, then refused; `dangling_too`: one that points at
    /// nothing is refused as well (at the end, everything it could name exists).
    fn check_link(&self, i: usize, dangling_too: bool) -> Result<(), ArchiveError> {
        let (name, rel) = &self.links[i];
        let path = self.dest.join(rel);
        let refuse = |reason| {
            let target = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let _ = std::fs::remove_file(&path);
            ArchiveError::LinkOutside {
                entry: name.clone(),
                target,
                reason,
            }
        };
        match path.canonicalize() {
            Ok(real) if real.starts_with(&self.real) => Ok(()),
            Ok(_) => Err(refuse("resolves outside the model directory")),
            Err(_) if dangling_too => Err(refuse("points at nothing in the archive")),
            Err(_) => Ok(()),
        }
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
        assert!(matches!(
            unpack(ArchiveKind::Zip, &junk, &out),
            Err(ArchiveError::Read(_))
        ));
        assert!(unpack(ArchiveKind::Tar, &dir.path().join("missing.tar"), &out).is_err());
    }

    /// One tar entry, written raw: `tar::Builder` itself refuses `..` and absolute names.
    enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
    }

    fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, data): (&str, &[u8]) = match e {
                E::File(n, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    (n, d)
                }
                E::Dir(n) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    (n, b"")
                }
                E::Symlink(n, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_link_name_literal(t).unwrap();
                    (n, b"")
                }
                E::HardLink(n, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_link_name_literal(t).unwrap();
                    (n, b"")
                }
                E::Fifo(n) => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    (n, b"")
                }
            };
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Unpacks `bytes` (a `kind` archive) into `<tmp>/root/dest`; returns the result and the
    /// temporary folder, so a test can check nothing landed in `root` beside `dest`.
    fn try_unpack(
        kind: ArchiveKind,
        bytes: &[u8],
    ) -> (Result<(), ArchiveError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, bytes).unwrap();
        let dest = dir.path().join("root/dest");
        std::fs::create_dir_all(&dest).unwrap();
        (unpack(kind, &file, &dest), dir)
    }

    /// Every path under `<tmp>/root` (links not followed).
    fn listing(dir: &tempfile::TempDir) -> Vec<String> {
        fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        let root = dir.path().join("root");
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn tar_entries_that_escape_are_refused_with_the_entry() {
        let cases: Vec<(Vec<E>, &str)> = vec![
            (
                vec![E::File("../evil", b"x")],
                "refusing entry \"../evil\": `..` in the name",
            ),
            (
                vec![E::File("sub/../../evil", b"x")],
                "refusing entry \"sub/../../evil\": `..` in the name",
            ),
            (
                vec![E::File("/tmp/evil", b"x")],
                "refusing entry \"/tmp/evil\": absolute name",
            ),
            (
                vec![E::Symlink("passwd", "/etc/passwd")],
                "refusing link \"passwd\" -> \"/etc/passwd\": an absolute link",
            ),
            (
                vec![E::Dir("sub/"), E::Symlink("sub/up", "../../x")],
                "refusing link \"sub/up\" -> \"../../x\": points outside the model directory",
            ),
            (
                vec![E::HardLink("h", "../outside")],
                "refusing link \"h\" -> \"../outside\": a hard link must name an entry",
            ),
            (
                vec![E::Fifo("pipe")],
                "refusing entry \"pipe\": FIFO entries are not unpacked",
            ),
            // a chain: `c` is the folder itself, so `c/..` is its parent
            (
                vec![E::Symlink("c", "."), E::Symlink("e", "c/..")],
                "refusing link \"e\" -> \"c/..\": resolves outside the model directory",
            ),
            // the same chain made in the other order: found once both exist
            (
                vec![E::Symlink("e", "c/.."), E::Symlink("c", ".")],
                "refusing link \"e\" -> \"c/..\": resolves outside the model directory",
            ),
            // writing through a link the archive made, even one pointing inside
            (
                vec![
                    E::Dir("real/"),
                    E::Symlink("l", "real"),
                    E::File("l/f", b"x"),
                ],
                "refusing entry \"l/f\": it would write through the link \"l\"",
            ),
            (
                vec![E::Symlink("m", "nothing-here")],
                "refusing link \"m\" -> \"nothing-here\": points at nothing in the archive",
            ),
        ];
        for (entries, want) in cases {
            let (got, dir) = try_unpack(ArchiveKind::Tar, &tar_of(&entries));
            let err = got.unwrap_err().to_string();
            assert!(err.starts_with(want), "{want}\n got {err}");
            // nothing beside dest, and no link out of it is left
            for p in listing(&dir) {
                assert!(p == "dest" || p.starts_with("dest/"), "{want}: {p} written");
                let path = dir.path().join("root").join(&p);
                if let Ok(real) = path.canonicalize() {
                    assert!(
                        real.starts_with(dir.path().join("root/dest").canonicalize().unwrap()),
                        "{want}: {p} resolves to {}",
                        real.display()
                    );
                }
            }
        }
    }

    #[test]
    fn links_inside_the_model_are_kept() {
        let bytes = tar_of(&[
            E::Dir("./"),
            E::Dir("v1/"),
            E::File("v1/model.bst", b"weights"),
            E::Symlink("latest", "v1"),
            E::Symlink("v1/alias.bst", "../v1/model.bst"),
            E::HardLink("copy.bst", "v1/model.bst"),
        ]);
        let (got, dir) = try_unpack(ArchiveKind::Tar, &bytes);
        got.unwrap();
        let dest = dir.path().join("root/dest");
        assert_eq!(
            std::fs::read(dest.join("latest/model.bst")).unwrap(),
            b"weights"
        );
        assert_eq!(
            std::fs::read(dest.join("v1/alias.bst")).unwrap(),
            b"weights"
        );
        assert_eq!(std::fs::read(dest.join("copy.bst")).unwrap(), b"weights");
    }

    fn zip_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, link) in entries {
            match link {
                Some(target) => w.add_symlink(*name, *target, opts).unwrap(),
                None => {
                    w.start_file(*name, opts).unwrap();
                    std::io::Write::write_all(&mut w, b"x").unwrap();
                }
            }
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_entries_that_escape_are_refused_with_the_entry() {
        for (entries, want) in [
            (
                vec![("../evil", None)],
                "refusing entry \"../evil\": `..` in the name",
            ),
            (
                vec![("/tmp/evil", None)],
                "refusing entry \"/tmp/evil\": absolute name",
            ),
            (
                vec![("..\\evil", None)],
                "refusing entry \"..\\\\evil\": backslash or NUL in the name",
            ),
            (
                vec![("out", Some("/etc"))],
                "refusing link \"out\" -> \"/etc\": an absolute link",
            ),
            (
                vec![("a/out", Some("../../x"))],
                "refusing link \"a/out\" -> \"../../x\": points outside the model directory",
            ),
            (
                vec![("c", Some(".")), ("e", Some("c/.."))],
                "refusing link \"e\" -> \"c/..\": resolves outside the model directory",
            ),
        ] {
            let (got, dir) = try_unpack(ArchiveKind::Zip, &zip_of(&entries));
            let err = got.unwrap_err().to_string();
            assert!(err.starts_with(want), "{want}\n got {err}");
            for p in listing(&dir) {
                assert!(p == "dest" || p.starts_with("dest/"), "{want}: {p} written");
            }
        }
        let (got, dir) = try_unpack(
            ArchiveKind::Zip,
            &zip_of(&[("m/model.bst", None), ("alias.bst", Some("m/model.bst"))]),
        );
        got.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("root/dest/alias.bst")).unwrap(),
            b"x"
        );
    }
}
