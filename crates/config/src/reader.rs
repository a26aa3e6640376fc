//! A walker over a parsed TOML table that records every error with its key.

use crate::error::{ConfigError, ConfigErrors};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::str::FromStr;
use toml::{Table, Value};

#[derive(Debug)]
/// Reads one table of a configuration file.
///
/// Each getter marks its key as known; [`Reader::finish`] reports the keys
/// nobody asked for. Type and range problems are recorded, not returned, and
/// the getter falls back to the default so that reading can go on and find
/// the next problem too.
pub struct Reader {
    file: Rc<str>,
    prefix: String,
    table: Table,
    seen: BTreeSet<String>,
    errors: Rc<RefCell<Vec<ConfigError>>>,
}

/// A configuration file's text, its name for messages and the directory
/// its relative paths are taken from.
pub(crate) fn read_file(path: &std::path::Path) -> Result<(String, String, PathBuf), ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    let base = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    Ok((text, name, base))
}

impl Reader {
    /// Parses `text` (the contents of `file`). A syntax error is reported as
    /// `file:line:column: message`.
    pub fn parse(text: &str, file: &str) -> Result<Reader, ConfigErrors> {
        match text.parse::<Table>() {
            Ok(table) => Ok(Reader::from_table(table, file)),
            Err(e) => {
                let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
                Err(ConfigErrors(vec![ConfigError {
                    file: format!("{file}:{line}:{col}"),
                    key: String::new(),
                    message: e.message().trim().to_string(),
                }]))
            }
        }
    }

    /// A reader over an already parsed table (an empty one gives defaults).
    pub fn from_table(table: Table, file: &str) -> Reader {
        Reader {
            file: file.into(),
            prefix: String::new(),
            table,
            seen: BTreeSet::new(),
            errors: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// The file this reader reads, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The dotted name of `key` in this table.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Records a problem with `key` of this table.
    pub fn error(&self, key: &str, message: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigError {
            file: self.file.to_string(),
            key: self.path(key),
            message: message.into(),
        });
    }

    /// Records a problem with an environment variable the configuration read.
    pub fn env_error(&self, var: &str, message: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigError {
            file: "<environment>".to_string(),
            key: var.to_string(),
            message: message.into(),
        });
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.seen.insert(key.to_string());
        self.table.get(key).cloned()
    }

    /// Whether the file sets `key` at all.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The sub-table `key`; missing gives an empty table.
    pub fn table(&mut self, key: &str) -> Reader {
        let table = match self.take(key) {
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.error(key, format!("expected a table, found {}", other.type_str()));
                Table::new()
            }
            None => Table::new(),
        };
        Reader {
            file: self.file.clone(),
            prefix: self.path(key),
            table,
            seen: BTreeSet::new(),
            errors: self.errors.clone(),
        }
    }

    /// An array of tables (`[[key]]`), each as its own reader.
    pub fn tables(&mut self, key: &str) -> Vec<Reader> {
        match self.take(key) {
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Table(table) => Some(Reader {
                        file: self.file.clone(),
                        prefix: format!("{}[{i}]", self.path(key)),
                        table,
                        seen: BTreeSet::new(),
                        errors: self.errors.clone(),
                    }),
                    other => {
                        self.error(
                            &format!("{key}[{i}]"),
                            format!("expected a table, found {}", other.type_str()),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.error(
                    key,
                    format!("expected an array of tables, found {}", other.type_str()),
                );
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    pub fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            other => {
                self.error(
                    key,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub fn string_or(&mut self, key: &str, default: &str) -> String {
        self.opt_string(key).unwrap_or_else(|| default.to_string())
    }

    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        match self.take(key) {
            Some(Value::Boolean(b)) => b,
            Some(other) => {
                self.error(
                    key,
                    format!("expected true or false, found {}", other.type_str()),
                );
                default
            }
            None => default,
        }
    }

    /// An integer in `min..=max`.
    pub fn opt_int(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        match self.take(key)? {
            Value::Integer(i) if (min..=max).contains(&i) => Some(i),
            Value::Integer(i) => {
                self.error(key, format!("{i} is out of range: expected {min} to {max}"));
                None
            }
            other => {
                self.error(
                    key,
                    format!("expected an integer, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub fn u16_or(&mut self, key: &str, default: u16) -> u16 {
        self.opt_u16(key).unwrap_or(default)
    }

    pub fn opt_u16(&mut self, key: &str) -> Option<u16> {
        self.opt_int(key, 0, u16::MAX as i64).map(|i| i as u16)
    }

    pub fn u64_or(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        self.opt_int(key, min as i64, max.min(i64::MAX as u64) as i64)
            .map(|i| i as u64)
            .unwrap_or(default)
    }

    pub fn u32_or(&mut self, key: &str, default: u32, min: u32, max: u32) -> u32 {
        self.opt_int(key, min as i64, max as i64)
            .map(|i| i as u32)
            .unwrap_or(default)
    }

    /// A value parsed from a string with `FromStr`, e.g. an IP address.
    pub fn parsed_or<T: FromStr>(&mut self, key: &str, default: T, what: &str) -> T {
        match self.opt_string(key) {
            Some(s) => match s.parse() {
                Ok(v) => v,
                Err(_) => {
                    self.error(key, format!("{s:?} is not {what}"));
                    default
                }
            },
            None => default,
        }
    }

    pub fn ip_or(&mut self, key: &str, default: IpAddr) -> IpAddr {
        self.parsed_or(key, default, "an IP address")
    }

    /// A path; relative paths are taken relative to `base`.
    pub fn opt_path(&mut self, key: &str, base: &std::path::Path) -> Option<PathBuf> {
        let s = self.opt_string(key)?;
        if s.is_empty() {
            self.error(key, "must not be empty");
            return None;
        }
        Some(base.join(s))
    }

    /// A list of strings.
    pub fn strings(&mut self, key: &str) -> Vec<String> {
        match self.take(key) {
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, v) in items.into_iter().enumerate() {
                    match v {
                        Value::String(s) => out.push(s),
                        other => self.error(
                            &format!("{key}[{i}]"),
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.error(
                    key,
                    format!("expected an array of strings, found {}", other.type_str()),
                );
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// A table of string values, e.g. environment variables.
    pub fn string_map(&mut self, key: &str) -> BTreeMap<String, String> {
        let mut sub = self.table(key);
        let keys: Vec<String> = sub.table.keys().cloned().collect();
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(v) = sub.opt_string(&k) {
                out.insert(k, v);
            }
        }
        sub.finish();
        out
    }

    /// Reports every key of this table that no getter asked for.
    pub fn finish(self) {
        for key in self.table.keys() {
            if !self.seen.contains(key) {
                self.error(key, "unknown key");
            }
        }
    }

    /// Finishes this (top-level) reader and returns every recorded error.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        let errors = self.errors.clone();
        self.finish();
        let errors = std::mem::take(&mut *errors.borrow_mut());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error_with_its_key() {
        let text = "a = 1\n[t]\nport = \"x\"\nflag = 3\nextra = true\n[t.inner]\nn = 70000\n";
        let mut r = Reader::parse(text, "w.toml").unwrap();
        let mut t = r.table("t");
        assert_eq!(t.u16_or("port", 7), 7);
        assert!(!t.bool_or("flag", false));
        let mut inner = t.table("inner");
        assert_eq!(inner.opt_u16("n"), None);
        inner.finish();
        t.finish();
        let errs = r.into_result().unwrap_err();
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "w.toml:t.port: expected an integer, found string",
                "w.toml:t.flag: expected true or false, found integer",
                "w.toml:t.inner.n: 70000 is out of range: expected 0 to 65535",
                "w.toml:t.extra: unknown key",
                "w.toml:a: unknown key",
            ]
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = Reader::parse("[server]\nport = = 3\n", "bad.toml").unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("bad.toml:2:"), "{line}");
    }
}
