//! The unpacker of `nullspace volume download` of a tree: the server sends one tar stream,
//! and whatever it holds must land below the target directory and nowhere else. Every entry's
//! name is plain relative components (no `..`, no absolute name); every directory on the way
//! is a real directory (never a symlink, so nothing is written through one); a file replaces
//! a file or symlink of its name, never writes through it. Hard links, devices and FIFOs are
//! skipped. A symlink entry is recreated only when its target stays below the target
//! directory ([`link_stays_inside`]); any other link is skipped with a warning on stderr, and an
//! entry below a skipped link is refused as one through a link would be.

use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use nullspace_core::Error;

/// What [`unpack_tar`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Symlinks not recreated because they point outside the target directory.
    pub skipped_symlinks: u64,
    pub bytes: u64,
}

/// Whether a link at `rel` (relative to the target directory) with target `link` resolves
/// below the target directory: the target is relative, its `..` components all come first
/// (a `..` after a name could climb out through another link) and they do not climb above the
/// target directory.
fn link_stays_inside(rel: &Path, link: &Path) -> bool {
    let mut depth = rel.components().count().saturating_sub(1);
    let mut named = false;
    for c in link.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(_) => named = true,
            Component::ParentDir if !named && depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The entry's path as plain relative components; `None` for the archive's root (`./`).
fn safe_relative(raw: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(Error::invalid_argument(format!(
                    "refusing archive entry {}: it escapes the target directory",
                    raw.display()
                ))
                .into())
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Makes sure every directory between `dest` and `rel`'s parent is a real directory (made
/// if missing, never a symlink), so nothing is written through a link.
fn ensure_parents(dest: &Path, rel: &Path) -> anyhow::Result<PathBuf> {
    let mut at = dest.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for c in parent.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid_argument(format!(
                    "refusing archive entry {}: {} is not a directory",
                    rel.display(),
                    at.display()
                ))
                .into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)
                .with_context(|| format!("cannot create {}", at.display()))?,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot read {}", at.display())))
            }
        }
    }
    Ok(dest.join(rel))
}

/// Removes a file or symlink that a new entry replaces; refuses to replace a directory.
fn clear_target(target: &Path, rel: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(Error::invalid_argument(format!(
            "refusing archive entry {}: a directory is in the way at {}",
            rel.display(),
            target.display()
        ))
        .into()),
        Ok(_) => std::fs::remove_file(target)
            .with_context(|| format!("cannot replace {}", target.display())),
        Err(_) => Ok(()),
    }
}

/// Unpacks a tar stream into `dest` (created if missing), safely: every entry must stay
/// below `dest` (no absolute paths, no `..`, no writing through symlinks); files replace
/// files of the same name; hard links and special files are skipped.
pub fn unpack_tar(reader: impl Read, dest: &Path) -> anyhow::Result<Unpacked> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut n = Unpacked::default();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let mut skipped_links: Vec<PathBuf> = Vec::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().context("invalid tar stream")? {
        let mut entry = entry.context("invalid tar stream")?;
        let raw = entry.path().context("invalid tar entry name")?.into_owned();
        let Some(rel) = safe_relative(&raw)? else {
            continue;
        };
        if let Some(link) = skipped_links
            .iter()
            .find(|l| rel.starts_with(l) && rel != **l)
        {
            return Err(Error::invalid_argument(format!(
                "refusing archive entry {}: it is below the symlink {} (skipped: it points outside)",
                rel.display(),
                link.display()
            ))
            .into());
        }
        // An entry of the skipped link's own name takes its place.
        skipped_links.retain(|l| *l != rel);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let target = ensure_parents(dest, &rel)?;
        match kind {
            tar::EntryType::Directory => {
                match std::fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        clear_target(&target, &rel)?;
                        std::fs::create_dir(&target)
                            .with_context(|| format!("cannot create {}", target.display()))?;
                    }
                    Err(_) => std::fs::create_dir(&target)
                        .with_context(|| format!("cannot create {}", target.display()))?,
                }
                dir_modes.push((target, mode | 0o700));
                n.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear_target(&target, &rel)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    // O_EXCL: never follows a symlink someone put there after clear_target.
                    .create_new(true)
                    .mode(mode)
                    .open(&target)
                    .with_context(|| format!("cannot create {}", target.display()))?;
                let copied = std::io::copy(&mut entry, &mut f)
                    .with_context(|| format!("cannot write {}", target.display()))?;
                if let Ok(Some(mtime)) = entry
                    .header()
                    .mtime()
                    .map(|t| std::time::UNIX_EPOCH.checked_add(Duration::from_secs(t)))
                {
                    let _ = f.set_modified(mtime);
                }
                n.files += 1;
                n.bytes += copied;
            }
            tar::EntryType::Symlink => {
                let Some(link) = entry.link_name().context("invalid symlink entry")? else {
                    continue;
                };
                if !link_stays_inside(&rel, &link) {
                    eprintln!(
                        "warning: skipping symlink {} -> {}: it points outside {}",
                        rel.display(),
                        link.display(),
                        dest.display()
                    );
                    skipped_links.push(rel);
                    n.skipped_symlinks += 1;
                    continue;
                }
                clear_target(&target, &rel)?;
                std::os::unix::fs::symlink(&link, &target)
                    .with_context(|| format!("cannot create {}", target.display()))?;
                n.symlinks += 1;
            }
            _ => {}
        }
    }
    // Directory modes last, deepest first, so a read-only directory is filled before.
    for (dir, mode) in dir_modes.into_iter().rev() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            // Write the raw name, so hostile names are not cleaned up by the builder.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_a_tree() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("out");
        let tar = tar_of(&[
            ("a/", tar::EntryType::Directory, b"", None),
            ("a/b.txt", tar::EntryType::Regular, b"bee", None),
            ("empty/", tar::EntryType::Directory, b"", None),
            ("link", tar::EntryType::Symlink, b"", Some("a/b.txt")),
        ]);
        let n = unpack_tar(&tar[..], &dest).unwrap();
        assert_eq!((n.files, n.dirs, n.symlinks, n.bytes), (1, 2, 1, 3));
        assert_eq!(std::fs::read(dest.join("a/b.txt")).unwrap(), b"bee");
        assert!(dest.join("empty").is_dir());
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("a/b.txt")
        );
    }

    #[test]
    fn links_that_point_outside_are_skipped_and_inside_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("out");
        let tar = tar_of(&[
            ("a/", tar::EntryType::Directory, b"", None),
            ("a/f.txt", tar::EntryType::Regular, b"f", None),
            ("evil", tar::EntryType::Symlink, b"", Some("/etc/passwd")),
            ("up", tar::EntryType::Symlink, b"", Some("../../x")),
            ("a/up", tar::EntryType::Symlink, b"", Some("../..")),
            (
                "a/sneak",
                tar::EntryType::Symlink,
                b"",
                Some("f.txt/../../.."),
            ),
            ("a/in", tar::EntryType::Symlink, b"", Some("./f.txt")),
            ("a/top", tar::EntryType::Symlink, b"", Some("../a/f.txt")),
        ]);
        let n = unpack_tar(&tar[..], &dest).unwrap();
        assert_eq!((n.symlinks, n.skipped_symlinks), (2, 4));
        for gone in ["evil", "up", "a/up", "a/sneak"] {
            assert!(
                std::fs::symlink_metadata(dest.join(gone)).is_err(),
                "{gone}"
            );
        }
        assert_eq!(std::fs::read(dest.join("a/in")).unwrap(), b"f");
        assert_eq!(std::fs::read(dest.join("a/top")).unwrap(), b"f");
    }

    #[test]
    fn refuses_escaping_entries() {
        for (entries, what) in [
            (
                vec![("../evil", tar::EntryType::Regular, &b"x"[..], None)],
                "parent",
            ),
            (
                vec![("/abs", tar::EntryType::Regular, &b"x"[..], None)],
                "absolute",
            ),
            (
                vec![
                    ("l", tar::EntryType::Symlink, &b""[..], Some("..")),
                    ("l/evil", tar::EntryType::Regular, &b"x"[..], None),
                ],
                "through a symlink",
            ),
        ] {
            let t = tempfile::tempdir().unwrap();
            let dest = t.path().join("out");
            let tar = tar_of(&entries);
            let e = unpack_tar(&tar[..], &dest).unwrap_err();
            assert!(
                format!("{e:#}").contains("refusing archive entry"),
                "{what}: {e:#}"
            );
            assert!(!t.path().join("evil").exists(), "{what}");
            assert!(!t.path().join("abs").exists(), "{what}");
        }
    }

    /// A header named exactly `name` (no clean-up of hostile names by the builder).
    fn raw_header(
        name: &[u8],
        kind: tar::EntryType,
        size: u64,
        link: Option<&[u8]>,
    ) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(size);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        h
    }

    /// Appends an entry whose name is carried by a GNU long-name record (names over 100 bytes).
    fn append_long_named(b: &mut tar::Builder<Vec<u8>>, name: &[u8], data: &[u8]) {
        let mut long = name.to_vec();
        long.push(0);
        let record = raw_header(
            b"././@LongLink",
            tar::EntryType::GNULongName,
            long.len() as u64,
            None,
        );
        b.append(&record, &long[..]).unwrap();
        let h = raw_header(
            &name[..100],
            tar::EntryType::Regular,
            data.len() as u64,
            None,
        );
        b.append(&h, data).unwrap();
    }

    /// Appends an entry whose name is carried by a PAX `path` record.
    fn append_pax_named(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let field = format!(" path={name}\n");
        // The record's length counts its own digits.
        let mut len = field.len() + 1;
        while format!("{len}{field}").len() != len {
            len += 1;
        }
        let record = format!("{len}{field}");
        let pax = raw_header(b"pax", tar::EntryType::XHeader, record.len() as u64, None);
        b.append(&pax, record.as_bytes()).unwrap();
        let h = raw_header(
            b"innocent",
            tar::EntryType::Regular,
            data.len() as u64,
            None,
        );
        b.append(&h, data).unwrap();
    }

    /// A target directory `out` beside a directory `outside` holding `secret.txt`, for checks
    /// that nothing outside the target changed.
    struct Scene {
        tmp: tempfile::TempDir,
    }

    impl Scene {
        fn new() -> Scene {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::create_dir(tmp.path().join("outside")).unwrap();
            std::fs::write(tmp.path().join("outside/secret.txt"), b"secret").unwrap();
            Scene { tmp }
        }

        fn dest(&self) -> PathBuf {
            self.tmp.path().join("out")
        }

        fn outside(&self) -> PathBuf {
            self.tmp.path().join("outside")
        }

        /// Requires that `outside` holds only the untouched secret and that nothing but `out`
        /// and `outside` appeared beside them.
        #[track_caller]
        fn assert_outside_untouched(&self, what: &str) {
            assert_eq!(
                names_in(&self.outside()),
                ["secret.txt"],
                "{what}: entries outside"
            );
            assert_eq!(
                std::fs::read(self.outside().join("secret.txt")).unwrap(),
                b"secret",
                "{what}: the secret"
            );
            let mut beside = names_in(self.tmp.path());
            beside.retain(|n| n != "out");
            assert_eq!(beside, ["outside"], "{what}: entries beside the target");
        }
    }

    /// The names in `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    #[track_caller]
    fn assert_refused(result: anyhow::Result<Unpacked>, what: &str) {
        let e = result.expect_err(what);
        assert!(
            format!("{e:#}").contains("refusing archive entry"),
            "{what}: {e:#}"
        );
    }

    #[test]
    fn parent_components_anywhere_in_a_name_are_refused() {
        for name in [
            "..",
            "../evil",
            "a/../../evil",
            "./../evil",
            "a/b/../../../evil",
        ] {
            let s = Scene::new();
            let tar = tar_of(&[
                ("a/", tar::EntryType::Directory, b"", None),
                (name, tar::EntryType::Regular, b"x", None),
            ]);
            assert_refused(unpack_tar(&tar[..], &s.dest()), name);
            s.assert_outside_untouched(name);
        }
    }

    #[test]
    fn absolute_names_are_refused() {
        let s = Scene::new();
        let target = s.outside().join("secret.txt");
        let name = target.to_str().unwrap();
        for kind in [
            tar::EntryType::Regular,
            tar::EntryType::Directory,
            tar::EntryType::Symlink,
        ] {
            let tar = tar_of(&[(name, kind, b"", Some("x"))]);
            assert_refused(unpack_tar(&tar[..], &s.dest()), name);
            s.assert_outside_untouched(name);
        }
    }

    #[test]
    fn nothing_is_written_through_a_symlink_in_the_archive() {
        let s = Scene::new();
        let outside = s.outside();
        let outside = outside.to_str().unwrap();
        for (link, through, what) in [
            ("..", "l/evil", "a link to the parent"),
            (outside, "l/evil", "a link to a directory outside"),
            (
                outside,
                "l/secret.txt",
                "a link to a directory outside, onto its file",
            ),
            (
                "../outside",
                "l/new/evil",
                "a link, then a directory below it",
            ),
        ] {
            let tar = tar_of(&[
                ("l", tar::EntryType::Symlink, b"", Some(link)),
                (through, tar::EntryType::Regular, b"evil", None),
            ]);
            assert_refused(unpack_tar(&tar[..], &s.dest()), what);
            s.assert_outside_untouched(what);
            std::fs::remove_dir_all(s.dest()).unwrap();
        }
        // The same one level down.
        let tar = tar_of(&[
            ("a/", tar::EntryType::Directory, b"", None),
            ("a/l", tar::EntryType::Symlink, b"", Some("../../outside")),
            ("a/l/evil", tar::EntryType::Regular, b"evil", None),
        ]);
        assert_refused(unpack_tar(&tar[..], &s.dest()), "a link below a directory");
        s.assert_outside_untouched("a link below a directory");
    }

    #[test]
    fn an_entry_named_like_a_symlink_replaces_it_instead_of_following_it() {
        let s = Scene::new();
        let secret = s.outside().join("secret.txt");
        let outside = s.outside();
        // A file entry after a link to a file outside.
        let tar = tar_of(&[
            (
                "l",
                tar::EntryType::Symlink,
                b"",
                Some(secret.to_str().unwrap()),
            ),
            ("l", tar::EntryType::Regular, b"mine", None),
        ]);
        let n = unpack_tar(&tar[..], &s.dest()).unwrap();
        // The link points outside: it is skipped (not recreated), and the file takes its name.
        assert_eq!((n.files, n.symlinks, n.skipped_symlinks), (1, 0, 1));
        let l = s.dest().join("l");
        assert!(std::fs::symlink_metadata(&l).unwrap().is_file());
        assert_eq!(std::fs::read(&l).unwrap(), b"mine");
        s.assert_outside_untouched("file after link");

        // A directory entry after a link to a directory outside, then a file in it.
        let tar = tar_of(&[
            (
                "d",
                tar::EntryType::Symlink,
                b"",
                Some(outside.to_str().unwrap()),
            ),
            ("d/", tar::EntryType::Directory, b"", None),
            ("d/f", tar::EntryType::Regular, b"inside", None),
        ]);
        unpack_tar(&tar[..], &s.dest()).unwrap();
        assert!(std::fs::symlink_metadata(s.dest().join("d"))
            .unwrap()
            .is_dir());
        assert_eq!(std::fs::read(s.dest().join("d/f")).unwrap(), b"inside");
        s.assert_outside_untouched("directory after link");
    }

    #[test]
    fn symlinks_already_in_the_target_are_replaced_not_followed() {
        let s = Scene::new();
        std::fs::create_dir(s.dest()).unwrap();
        std::os::unix::fs::symlink(s.outside().join("secret.txt"), s.dest().join("f")).unwrap();
        std::os::unix::fs::symlink(s.outside(), s.dest().join("d")).unwrap();
        let tar = tar_of(&[
            ("f", tar::EntryType::Regular, b"new", None),
            ("d/x", tar::EntryType::Regular, b"x", None),
        ]);
        // The file replaces its link; the directory on the way is a link, so `d/x` is refused.
        assert_refused(unpack_tar(&tar[..], &s.dest()), "through an existing link");
        assert_eq!(std::fs::read(s.dest().join("f")).unwrap(), b"new");
        s.assert_outside_untouched("existing links");
    }

    #[test]
    fn a_file_is_no_directory_and_a_directory_is_not_replaced() {
        let s = Scene::new();
        let tar = tar_of(&[
            ("f", tar::EntryType::Regular, b"x", None),
            ("f/g", tar::EntryType::Regular, b"y", None),
        ]);
        assert_refused(unpack_tar(&tar[..], &s.dest()), "below a file");
        let tar = tar_of(&[
            ("d/", tar::EntryType::Directory, b"", None),
            ("d", tar::EntryType::Regular, b"y", None),
        ]);
        assert_refused(unpack_tar(&tar[..], &s.dest()), "onto a directory");
        assert!(s.dest().join("d").is_dir());
        s.assert_outside_untouched("files and directories");
    }

    #[test]
    fn hard_links_devices_and_fifos_are_skipped() {
        let s = Scene::new();
        let secret = s.outside().join("secret.txt");
        let tar = tar_of(&[
            ("kept", tar::EntryType::Regular, b"k", None),
            (
                "hard-out",
                tar::EntryType::Link,
                b"",
                Some(secret.to_str().unwrap()),
            ),
            (
                "hard-up",
                tar::EntryType::Link,
                b"",
                Some("../outside/secret.txt"),
            ),
            ("hard-in", tar::EntryType::Link, b"", Some("kept")),
            ("char", tar::EntryType::Char, b"", None),
            ("block", tar::EntryType::Block, b"", None),
            ("fifo", tar::EntryType::Fifo, b"", None),
        ]);
        let n = unpack_tar(&tar[..], &s.dest()).unwrap();
        assert_eq!(
            n,
            Unpacked {
                files: 1,
                dirs: 0,
                symlinks: 0,
                skipped_symlinks: 0,
                bytes: 1
            }
        );
        assert_eq!(names_in(&s.dest()), ["kept"]);
        let secret_links = std::fs::metadata(&secret).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&secret_links), 1);
        s.assert_outside_untouched("links and specials");
    }

    #[test]
    fn long_names_are_unpacked_and_checked_like_short_ones() {
        let s = Scene::new();
        let deep = format!("{}/{}", "d".repeat(120), "f".repeat(60));
        let mut b = tar::Builder::new(Vec::new());
        b.append(
            &raw_header(
                format!("{}/", "d".repeat(99)).as_bytes(),
                tar::EntryType::Directory,
                0,
                None,
            ),
            &b""[..],
        )
        .unwrap();
        append_long_named(&mut b, deep.as_bytes(), b"deep");
        append_pax_named(&mut b, "pax/named.txt", b"pax");
        let tar = b.into_inner().unwrap();
        let n = unpack_tar(&tar[..], &s.dest()).unwrap();
        assert_eq!(n.files, 2);
        assert_eq!(std::fs::read(s.dest().join(&deep)).unwrap(), b"deep");
        assert_eq!(
            std::fs::read(s.dest().join("pax/named.txt")).unwrap(),
            b"pax"
        );
        assert!(!s.dest().join("innocent").exists(), "the PAX name wins");

        // Escaping long names are refused like short ones.
        let escaping = format!("../{}", "e".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        append_long_named(&mut b, escaping.as_bytes(), b"evil");
        assert_refused(
            unpack_tar(&b.into_inner().unwrap()[..], &s.dest()),
            "GNU long name",
        );
        let mut b = tar::Builder::new(Vec::new());
        append_pax_named(&mut b, "../outside/pax-evil", b"evil");
        assert_refused(
            unpack_tar(&b.into_inner().unwrap()[..], &s.dest()),
            "PAX name",
        );
        let mut b = tar::Builder::new(Vec::new());
        append_pax_named(&mut b, "/abs-evil", b"evil");
        assert_refused(
            unpack_tar(&b.into_inner().unwrap()[..], &s.dest()),
            "absolute PAX name",
        );
        s.assert_outside_untouched("long names");
    }

    #[test]
    fn a_name_too_long_for_the_file_system_is_an_error() {
        let s = Scene::new();
        let mut b = tar::Builder::new(Vec::new());
        append_long_named(&mut b, "n".repeat(300).as_bytes(), b"x");
        let e = unpack_tar(&b.into_inner().unwrap()[..], &s.dest()).unwrap_err();
        assert!(format!("{e:#}").contains("cannot create"), "{e:#}");
        s.assert_outside_untouched("a name too long");
    }
}
