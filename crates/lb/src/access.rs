//! The access log: one line per request, Apache's combined format or JSON,
//! to standard output (through the log) or appended to a file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wharf_config::AccessLogFormat;

/// One request, as the access log records it.
pub struct Entry {
    pub peer: SocketAddr,
    pub time: SystemTime,
    pub method: String,
    pub target: String,
    pub version: http::Version,
    pub status: u16,
    pub bytes: u64,
    pub referer: String,
    pub user_agent: String,
    pub host: String,
    pub service: String,
    /// The member that answered, or `-`.
    pub member: String,
    pub duration: Duration,
}

enum Sink {
    Log,
    File(std::sync::mpsc::SyncSender<String>),
}

pub struct AccessLog {
    format: AccessLogFormat,
    sink: Sink,
}

/// Lines queued for the file writer before new ones are dropped (and
/// counted in a warning) rather than slowing requests down.
const QUEUE: usize = 65_536;

impl AccessLog {
    pub fn new(format: AccessLogFormat, path: Option<&Path>) -> std::io::Result<AccessLog> {
        let sink = match path {
            None => Sink::Log,
            Some(p) => {
                let mut file = std::io::BufWriter::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                );
                let (tx, rx) = std::sync::mpsc::sync_channel::<String>(QUEUE);
                std::thread::Builder::new()
                    .name("wharf-access-log".into())
                    .spawn(move || {
                        while let Ok(line) = rx.recv() {
                            let _ = writeln!(file, "{line}");
                            // Flush whenever the queue runs dry.
                            while let Ok(line) = rx.try_recv() {
                                let _ = writeln!(file, "{line}");
                            }
                            if let Err(e) = file.flush() {
                                tracing::warn!(error = %e, "cannot write the access log");
                            }
                        }
                    })?;
                Sink::File(tx)
            }
        };
        Ok(AccessLog { format, sink })
    }

    /// Whether lines are written at all (if not, callers skip gathering them).
    pub fn enabled(&self) -> bool {
        self.format != AccessLogFormat::Off
    }

    pub fn log(&self, e: &Entry) {
        let line = match self.format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Combined => combined(e),
            AccessLogFormat::Json => json(e),
        };
        match &self.sink {
            Sink::Log => tracing::info!(target: "wharf::access", "{line}"),
            Sink::File(tx) => {
                if tx.try_send(line).is_err() {
                    tracing::warn!("access log queue full; a line was dropped");
                }
            }
        }
    }
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
pub fn combined(e: &Entry) -> String {
    let q = |s: &str| dash(s).replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        e.peer.ip(),
        clf_time(e.time),
        e.method,
        q(&e.target),
        version(e.version),
        e.status,
        if e.bytes == 0 {
            "-".to_string()
        } else {
            e.bytes.to_string()
        },
        q(&e.referer),
        q(&e.user_agent),
    )
}

pub fn json(e: &Entry) -> String {
    serde_json::json!({
        "time": e.time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        "client": e.peer.ip().to_string(),
        "method": e.method,
        "target": e.target,
        "version": version(e.version),
        "status": e.status,
        "bytes": e.bytes,
        "referer": e.referer,
        "user_agent": e.user_agent,
        "host": e.host,
        "service": e.service,
        "member": e.member,
        "duration_ms": e.duration.as_secs_f64() * 1000.0,
    })
    .to_string()
}

/// `25/Nov/2026:11:46:52 +0000`, in UTC.
fn clf_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            peer: "192.0.2.7:40000".parse().unwrap(),
            // 2026-11-25T11:46:52Z
            time: UNIX_EPOCH + Duration::from_secs(1_795_607_212),
            method: "GET".into(),
            target: "/app?q=\"x\"".into(),
            version: http::Version::HTTP_11,
            status: 200,
            bytes: 12,
            referer: String::new(),
            user_agent: "curl/8".into(),
            host: "as.example.com".into(),
            service: "appserver".into(),
            member: "worker@10.0.0.2:4100".into(),
            duration: Duration::from_millis(3),
        }
    }

    #[test]
    fn combined_format() {
        assert_eq!(
            combined(&entry()),
            "192.0.2.7 - - [25/Nov/2026:11:46:52 +0000] \"GET /app?q=\\\"x\\\" HTTP/1.1\" 200 12 \"-\" \"curl/8\""
        );
    }

    #[test]
    fn json_format() {
        let v: serde_json::Value = serde_json::from_str(&json(&entry())).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["member"], "worker@10.0.0.2:4100");
        assert_eq!(v["target"], "/app?q=\"x\"");
    }

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
    }
}
