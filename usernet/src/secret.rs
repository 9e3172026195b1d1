//! The secret a stack keys its ISNs, timestamp offsets, SYN cookies and ephemeral port
//! offsets with ([`tcpstack::StackConfig::isn_secret`]).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where [`host_secret`] keeps the host's secret: under `/run`, which is emptied at
/// every boot.
pub const HOST_SECRET_PATH: &str = "/run/usernet/isn-secret";

/// Sixteen bytes from the kernel's CSPRNG.
pub fn random_secret() -> io::Result<[u8; 16]> {
    let mut secret = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

/// The host's secret: the same in every process until the machine reboots, as the
/// kernel's own TCP secret is. The first caller of a boot draws it
/// ([`random_secret`]) and stores it at [`HOST_SECRET_PATH`], readable by its owner
/// only; every later caller reads it.
///
/// What it is for: the stacks of [`NetLoop`](crate::NetLoop)s on the real clock run on
/// the host's monotonic clock, so with this secret a four-tuple's next connection
/// carries a later ISN and timestamp than its last one, whichever process opened
/// either. A peer that still holds the last one in TIME-WAIT then accepts the new SYN
/// at once (RFC 6191), where a timestamp from an unrelated secret is older half the
/// time: the peer answers with an ACK, the opener resets it and retransmits its SYN a
/// second later.
pub fn host_secret() -> io::Result<[u8; 16]> {
    static HOST: OnceLock<[u8; 16]> = OnceLock::new();
    if let Some(s) = HOST.get() {
        return Ok(*s);
    }
    let s = secret_at(Path::new(HOST_SECRET_PATH))?;
    Ok(*HOST.get_or_init(|| s))
}

/// The secret stored at `path`, drawn and stored first if there is none.
fn secret_at(path: &Path) -> io::Result<[u8; 16]> {
    if let Some(s) = read_secret(path)? {
        return Ok(s);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        ));
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Written whole under a name of its own, then linked into place: of racing
    // callers (other processes, other cores) one links first and the rest read its
    // secret, never a part-written file.
    static DRAFTS: AtomicU64 = AtomicU64::new(0);
    let draft = dir.join(format!(
        ".{}.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        DRAFTS.fetch_add(1, Ordering::Relaxed)
    ));
    let secret = random_secret()?;
    // A name of our own, made afresh: never a file or link someone else left there.
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&draft)
        .and_then(|mut f| f.write_all(&secret));
    let linked = written.and_then(|()| fs::hard_link(&draft, path));
    let _ = fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_secret(path)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string())),
        Err(e) => Err(e),
    }
}

/// The secret at `path`; `None` if there is no file. Only a regular file (not a link)
/// that no one but its owner may read or write holds one.
fn read_secret(path: &Path) -> io::Result<Option<[u8; 16]>> {
    let invalid = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(invalid("a symbolic link, not a secret".into()))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.mode() & 0o077 != 0 {
        return Err(invalid(format!(
            "not a private regular file (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::with_capacity(17);
    (&file).take(17).read_to_end(&mut bytes)?;
    bytes
        .try_into()
        .map(Some)
        .map_err(|b: Vec<u8>| invalid(format!("{} bytes, not a 16-byte secret", b.len())))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("usernet-secret-{label}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_first_caller_stores_a_private_secret_and_later_ones_read_it() {
        let scratch = Scratch::new("store");
        let path = scratch.0.join("run/isn-secret");
        let first = secret_at(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), first);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(secret_at(&path).unwrap(), first);
        // Nothing but the secret is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["isn-secret"]);
    }

    #[test]
    fn racing_callers_all_get_the_one_secret() {
        let scratch = Scratch::new("race");
        let path = scratch.0.join("isn-secret");
        let got: Vec<[u8; 16]> = std::thread::scope(|s| {
            let all: Vec<_> = (0..8).map(|_| s.spawn(|| secret_at(&path))).collect();
            all.into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        let stored = fs::read(&path).unwrap();
        assert!(got.iter().all(|s| s[..] == stored[..]), "{got:?}");
    }

    #[test]
    fn a_damaged_secret_is_an_error_not_a_new_secret() {
        let scratch = Scratch::new("damaged");
        fs::create_dir_all(&scratch.0).unwrap();
        let path = scratch.0.join("isn-secret");
        fs::write(&path, b"short").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = secret_at(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("5 bytes"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"short");
        // Readable by others: not a secret any more.
        fs::write(&path, [7u8; 16]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = secret_at(&path).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a private regular file (mode 644)"),
            "{e}"
        );
        // A link is followed by no one.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let link = scratch.0.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = secret_at(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}
