//! The admin accounts of a management node: `<data_dir>/admin/users.json`
//! (mode 0600), holding for each user only an argon2id hash of the
//! password. There is no default password: a manager's first start makes
//! one up and shows it once, or takes `WHARF_ADMIN_PASSWORD`.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The super tenant's administrator.
pub const SUPER_ADMIN: &str = "admin";
const FILE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// The tenant domain this user administers; `None`: the super admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// An argon2id PHC string.
    pub hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    version: u32,
    users: Vec<UserRecord>,
}

/// The users file, re-read whenever it changes on disk (so `wharf admin
/// passwd` takes effect on a running manager).
pub struct UserStore {
    path: PathBuf,
    cache: Mutex<Option<(Option<SystemTime>, Vec<UserRecord>)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("the password is {0} characters; use at least {min}", min = wharf_config::MIN_PASSWORD_LEN)]
    TooShort(usize),
    #[error("no user {0:?}")]
    NoSuchUser(String),
}

impl UserStore {
    pub fn open(data_dir: &Path) -> UserStore {
        UserStore {
            path: data_dir.join("admin").join("users.json"),
            cache: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl std::fmt::Display) -> UsersError {
        UsersError::File {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Every user, from the file as it is now.
    pub fn users(&self) -> Result<Vec<UserRecord>, UsersError> {
        let mtime = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| m.modified().ok());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, users)) = cache.as_ref() {
            if *seen == mtime && mtime.is_some() {
                return Ok(users.clone());
            }
        }
        let users = match std::fs::read(&self.path) {
            Ok(bytes) => {
                let f: UsersFile = serde_json::from_slice(&bytes).map_err(|e| self.err(e))?;
                if f.version != FILE_VERSION {
                    return Err(self.err(format!("version {} is not supported", f.version)));
                }
                f.users
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(self.err(e)),
        };
        *cache = Some((mtime, users.clone()));
        Ok(users)
    }

    pub fn find(&self, name: &str) -> Result<Option<UserRecord>, UsersError> {
        Ok(self.users()?.into_iter().find(|u| u.name == name))
    }

    fn write(&self, users: Vec<UserRecord>) -> Result<(), UsersError> {
        let body = serde_json::to_vec_pretty(&UsersFile {
            version: FILE_VERSION,
            users,
        })
        .expect("users serialize");
        let result = super::private_file::write_private(&self.path, &body);
        result.map_err(|e| self.err(e))?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Sets (creating the user if needed) `name`'s password.
    pub fn set_password(
        &self,
        name: &str,
        tenant: Option<&str>,
        password: &str,
    ) -> Result<(), UsersError> {
        check_password(password)?;
        let hash = hash_password(password);
        let mut users = self.users()?;
        match users.iter_mut().find(|u| u.name == name) {
            Some(u) => u.hash = hash,
            None => users.push(UserRecord {
                name: name.to_string(),
                tenant: tenant.map(str::to_string),
                hash,
            }),
        }
        self.write(users)
    }

    /// Removes `name`.
    pub fn remove(&self, name: &str) -> Result<(), UsersError> {
        let mut users = self.users()?;
        let before = users.len();
        users.retain(|u| u.name != name);
        if users.len() == before {
            return Err(UsersError::NoSuchUser(name.to_string()));
        }
        self.write(users)
    }

    /// Makes sure the super admin exists. With `from_env` the password is
    /// that; without, a new one is made up when there is none, and
    /// returned so the caller can show it once.
    pub fn ensure_super_admin(&self, from_env: Option<&str>) -> Result<Option<String>, UsersError> {
        let existing = self.find(SUPER_ADMIN)?;
        match (existing, from_env) {
            (Some(u), Some(p)) if verify_password(&u.hash, p) => Ok(None),
            (_, Some(p)) => {
                self.set_password(SUPER_ADMIN, None, p)?;
                tracing::info!(
                    user = SUPER_ADMIN,
                    "admin password set from WHARF_ADMIN_PASSWORD"
                );
                Ok(None)
            }
            (Some(_), None) => Ok(None),
            (None, None) => {
                let p = generate_password();
                self.set_password(SUPER_ADMIN, None, &p)?;
                Ok(Some(p))
            }
        }
    }
}

pub fn check_password(password: &str) -> Result<(), UsersError> {
    let n = password.chars().count();
    if n < wharf_config::MIN_PASSWORD_LEN {
        return Err(UsersError::TooShort(n));
    }
    Ok(())
}

/// An argon2id hash (a PHC string with its own random salt).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

/// Whether `password` matches `hash`; a malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// 24 random letters and digits (about 142 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::new();
    let mut buf = [0u8; 64];
    while out.len() < 24 {
        getrandom::fill(&mut buf).expect("the system has randomness");
        for b in buf {
            // Rejection sampling keeps every character equally likely.
            if (b as usize) < 256 - 256 % ALPHABET.len() && out.len() < 24 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_makes_up_a_password_and_keeps_only_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(dir.path());
        let p = store.ensure_super_admin(None).unwrap().expect("made up");
        assert_eq!(p.len(), 24);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&p), "the password itself is never stored");
        assert!(text.contains("$argon2id$"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(store.path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let u = store.find(SUPER_ADMIN).unwrap().unwrap();
        assert!(verify_password(&u.hash, &p));
        assert!(!verify_password(&u.hash, "wrong password!!"));
        // A second start shows nothing and keeps the password.
        assert_eq!(store.ensure_super_admin(None).unwrap(), None);
        assert!(verify_password(
            &store.find(SUPER_ADMIN).unwrap().unwrap().hash,
            &p
        ));
    }

    #[test]
    fn the_environment_sets_the_password_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(dir.path());
        assert_eq!(
            store
                .ensure_super_admin(Some("correct horse battery"))
                .unwrap(),
            None
        );
        let u = store.find(SUPER_ADMIN).unwrap().unwrap();
        assert!(verify_password(&u.hash, "correct horse battery"));
        assert!(matches!(
            store.set_password(SUPER_ADMIN, None, "short"),
            Err(UsersError::TooShort(5))
        ));
        // Another process changes it: the store sees the new file.
        UserStore::open(dir.path())
            .set_password(SUPER_ADMIN, None, "another long password")
            .unwrap();
        let u = store.find(SUPER_ADMIN).unwrap().unwrap();
        assert!(verify_password(&u.hash, "another long password"));
        assert!(!verify_password("not a hash", "x"));
    }
}
