//! Who is calling the admin API: login sessions (bearer tokens that
//! expire), HTTP Basic credentials for scripts, and the brakes on guessing
//! passwords.
//!
//! Every failed login is logged (user and peer, never the password) and
//! makes the next attempt for that user and from that peer wait: 250 ms
//! after one failure, doubling up to 30 s. Attempts that come sooner wait
//! their turn, or are refused with 429 when the wait would be long, so
//! parallel guessing gains nothing.

use super::users::{verify_password, UserStore};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    /// The tenant domain administered; `None`: the super admin.
    pub tenant: Option<String>,
}

struct Session {
    caller: Caller,
    /// The password hash at login: a password change ends the session.
    hash: String,
    expires: Instant,
}

/// Kept on tokio's clock, so tests can move time.
#[derive(Default)]
struct Attempts {
    failures: u32,
    next_allowed: Option<tokio::time::Instant>,
    last_failure: Option<tokio::time::Instant>,
}

/// Why a caller was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Wrong or missing credentials, or an expired session.
    Unauthorized(String),
    /// Too many recent failures; retry after the given time.
    TooManyAttempts(Duration),
}

const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Waiting longer than this for one's turn is refused instead.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    FIRST_DELAY
        .saturating_mul(1u32 << (failures - 1).min(16))
        .min(MAX_DELAY)
}

pub struct Auth {
    pub users: UserStore,
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    attempts: Mutex<HashMap<String, Attempts>>,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system has randomness");
    hex::encode(b)
}

/// Sessions are looked up by the SHA-256 of their token, so the tokens
/// themselves are kept nowhere.
fn token_key(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

impl Auth {
    pub fn new(users: UserStore, ttl: Duration) -> Auth {
        Auth {
            users,
            ttl,
            sessions: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Waits for this user's and this peer's turn to try a password.
    async fn wait_turn(&self, keys: &[String]) -> Result<(), Denied> {
        let now = tokio::time::Instant::now();
        let until = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            attempts.retain(|_, a| a.last_failure.is_some_and(|t| now - t < FORGET_AFTER));
            keys.iter()
                .filter_map(|k| attempts.get(k)?.next_allowed)
                .max()
        };
        match until {
            Some(t) if t > now + MAX_WAIT => Err(Denied::TooManyAttempts(t - now)),
            Some(t) if t > now => {
                tokio::time::sleep_until(t).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn note(&self, keys: &[String], ok: bool) {
        let now = tokio::time::Instant::now();
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            if ok {
                attempts.remove(k);
            } else {
                let a = attempts.entry(k.clone()).or_default();
                a.failures += 1;
                a.last_failure = Some(now);
                a.next_allowed = Some(now + delay(a.failures));
            }
        }
    }

    /// Checks a user's password, with the brakes on. Returns the caller
    /// and the hash it was checked against.
    pub async fn check_password(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(Caller, String), Denied> {
        let keys = [format!("user:{user}"), format!("peer:{peer}")];
        self.wait_turn(&keys).await?;
        let record = self.users.find(user).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the admin accounts");
            None
        });
        // A missing user costs the same time as a wrong password.
        let hash = record.as_ref().map_or_else(
            || "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Nz6nvyU1NpiHyYk0n0XbTeBx6oIdDHC+wAp5CYJDPY".to_string(),
            |r| r.hash.clone(),
        );
        let pw = password.to_string();
        let hash_for_check = hash.clone();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash_for_check, &pw))
            .await
            .unwrap_or(false)
            && record.is_some();
        self.note(&keys, ok);
        match record.filter(|_| ok) {
            Some(r) => Ok((
                Caller {
                    user: r.name,
                    tenant: r.tenant,
                },
                hash,
            )),
            None => {
                tracing::warn!(user = %user, %peer, "failed admin login");
                Err(Denied::Unauthorized("wrong user name or password".into()))
            }
        }
    }

    /// Logs in: a new session token.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(Caller, String), Denied> {
        let (caller, hash) = self.check_password(user, password, peer).await?;
        let token = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            token_key(&token),
            Session {
                caller: caller.clone(),
                hash,
                expires: now + self.ttl,
            },
        );
        tracing::info!(user = %caller.user, %peer, "admin logged in");
        Ok((caller, token))
    }

    pub fn logout(&self, token: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token_key(token));
    }

    /// The caller of a session token.
    pub fn session(&self, token: &str) -> Result<Caller, Denied> {
        let key = token_key(token);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = sessions.get(&key) else {
            return Err(Denied::Unauthorized(
                "not signed in, or the session expired: log in again".into(),
            ));
        };
        if s.expires <= Instant::now() {
            sessions.remove(&key);
            return Err(Denied::Unauthorized(
                "the session expired: log in again".into(),
            ));
        }
        let current = self.users.find(&s.caller.user).ok().flatten();
        if current.is_none_or(|u| u.hash != s.hash) {
            sessions.remove(&key);
            return Err(Denied::Unauthorized(
                "the password was changed: log in again".into(),
            ));
        }
        Ok(s.caller.clone())
    }

    /// The caller of an `Authorization` header: `Bearer <session token>`
    /// or `Basic <user:password>`.
    pub async fn authorize(&self, header: Option<&str>, peer: IpAddr) -> Result<Caller, Denied> {
        let header = header.unwrap_or("");
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.session(token.trim());
        }
        if let Some(b64) = header.strip_prefix("Basic ") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Denied::Unauthorized("malformed Basic credentials".into()))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| Denied::Unauthorized("malformed Basic credentials".into()))?;
            return self
                .check_password(user, password, peer)
                .await
                .map(|(c, _)| c);
        }
        Err(Denied::Unauthorized(
            "sign in first: POST /api/v1/login, then send Authorization: Bearer <token>".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let users = UserStore::open(dir.path());
        users
            .set_password("admin", None, "a long enough password")
            .unwrap();
        (dir, Auth::new(users, Duration::from_secs(60)))
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn delays_double_and_stop_growing() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(1), FIRST_DELAY);
        assert_eq!(delay(3), FIRST_DELAY * 4);
        assert_eq!(delay(40), MAX_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_slow_the_next_attempts_and_success_resets() {
        let (_dir, a) = auth();
        for _ in 0..3 {
            assert!(matches!(
                a.check_password("admin", "guess", PEER).await,
                Err(Denied::Unauthorized(_))
            ));
        }
        // The third failure set a 1 s wait: the right password waits it out.
        let before = tokio::time::Instant::now();
        a.check_password("admin", "a long enough password", PEER)
            .await
            .unwrap();
        assert!(before.elapsed() >= Duration::from_millis(900));
        // Reset: no wait now.
        let before = tokio::time::Instant::now();
        a.check_password("admin", "a long enough password", PEER)
            .await
            .unwrap();
        assert!(before.elapsed() < Duration::from_millis(100));
        // Many failures: refused at once with the time to wait.
        for _ in 0..6 {
            let _ = a.check_password("admin", "guess", PEER).await;
        }
        assert!(matches!(
            a.check_password("admin", "guess", PEER).await,
            Err(Denied::TooManyAttempts(_))
        ));
    }

    #[tokio::test]
    async fn sessions_expire_and_end_with_a_password_change() {
        let (_dir, a) = auth();
        let (caller, token) = a
            .login("admin", "a long enough password", PEER)
            .await
            .unwrap();
        assert_eq!(caller.user, "admin");
        assert_eq!(a.session(&token).unwrap(), caller);
        let bearer = format!("Bearer {token}");
        assert_eq!(a.authorize(Some(&bearer), PEER).await.unwrap(), caller);
        a.users
            .set_password("admin", None, "a brand new password")
            .unwrap();
        assert!(
            matches!(a.session(&token), Err(Denied::Unauthorized(m)) if m.contains("password was changed"))
        );
        let short = Auth::new(UserStore::open(_dir.path()), Duration::ZERO);
        let (_, t) = short
            .login("admin", "a brand new password", PEER)
            .await
            .unwrap();
        assert!(matches!(short.session(&t), Err(Denied::Unauthorized(m)) if m.contains("expired")));
        assert!(matches!(
            a.authorize(None, PEER).await,
            Err(Denied::Unauthorized(m)) if m.contains("sign in")
        ));
        use base64::Engine;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:a brand new password")
        );
        assert_eq!(a.authorize(Some(&basic), PEER).await.unwrap().user, "admin");
    }
}
