//! The seed's `loadbalancer.conf`: which host names the load balancer
//! serves and which cluster domain and sub-domain serves each.
//!
//! The grammar is the WSO2 ELB's: nested `name { … }` blocks, `key value;`
//! or `key: value;` statements, `#` comments to the end of the line,
//! comma-separated lists, and block names that may repeat (the seed lists
//! `wso2.as.domain` twice, once per sub-domain). Parsing is two steps: a
//! syntax tree with positions ([`parse_tree`]), then the meaning
//! ([`Services::parse`]). Syntax errors stop at the first one and say
//! `file:line:column`; keys Wharf does not know are returned as warnings
//! and ignored.

use std::fmt;
use std::time::Duration;

/// A position in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A problem in a loadbalancer.conf, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub file: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.message
        )
    }
}

impl std::error::Error for ConfError {}

/// One item of a block: a statement or a nested block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Statement {
        key: String,
        values: Vec<String>,
        pos: Pos,
    },
    Block {
        name: String,
        items: Vec<Item>,
        pos: Pos,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Semi,
    Comma,
    Colon,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    /// The next token and where it starts; `Ok(None)` at the end.
    fn next(&mut self) -> Result<Option<(Tok, Pos)>, (Pos, String)> {
        loop {
            match self.chars.peek() {
                None => return Ok(None),
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => {
                    while self.chars.peek().is_some_and(|c| *c != '\n') {
                        self.bump();
                    }
                }
                Some(_) => break,
            }
        }
        let start = self.pos;
        let c = self.bump().expect("peeked");
        let tok = match c {
            '{' => Tok::Open,
            '}' => Tok::Close,
            ';' => Tok::Semi,
            ',' => Tok::Comma,
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None => return Err((start, "unterminated quoted string".into())),
                        Some(q) if q == c => break,
                        Some('\n') => {
                            return Err((
                                start,
                                "quoted string runs past the end of the line".into(),
                            ))
                        }
                        Some(ch) => s.push(ch),
                    }
                }
                Tok::Word(s)
            }
            ':' if self
                .chars
                .peek()
                .is_none_or(|n| n.is_whitespace() || *n == '{') =>
            {
                Tok::Colon
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = self.chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | ',' | '#' | '"' | '\'') {
                        break;
                    }
                    // `key: value` — a colon that ends a word is a separator,
                    // one inside it (host:port) is not.
                    if n == ':' {
                        let mut ahead = self.chars.clone();
                        ahead.next();
                        if ahead.peek().is_none_or(|a| a.is_whitespace() || *a == '{') {
                            break;
                        }
                    }
                    s.push(n);
                    self.bump();
                }
                Tok::Word(s)
            }
        };
        Ok(Some((tok, start)))
    }
}

fn describe(t: &Option<(Tok, Pos)>) -> String {
    match t {
        None => "the end of the file".into(),
        Some((Tok::Word(w), _)) => format!("{w:?}"),
        Some((Tok::Open, _)) => "'{'".into(),
        Some((Tok::Close, _)) => "'}'".into(),
        Some((Tok::Semi, _)) => "';'".into(),
        Some((Tok::Comma, _)) => "','".into(),
        Some((Tok::Colon, _)) => "':'".into(),
    }
}

/// Nesting deeper than this is refused (a loadbalancer.conf needs four).
const MAX_DEPTH: usize = 32;

/// Parses the text into its blocks and statements.
pub fn parse_tree(text: &str, file: &str) -> Result<Vec<Item>, ConfError> {
    let mut lx = Lexer {
        chars: text.chars().peekable(),
        pos: Pos { line: 1, col: 1 },
    };
    let err = |pos: Pos, message: String| ConfError {
        file: file.to_string(),
        pos,
        message,
    };
    // A stack of open blocks: (name, pos, items).
    let mut stack: Vec<(String, Pos, Vec<Item>)> =
        vec![(String::new(), Pos { line: 1, col: 1 }, vec![])];
    let mut next = || lx.next().map_err(|(p, m)| err(p, m));
    let mut tok = next()?;
    loop {
        match tok.take() {
            None => {
                if stack.len() > 1 {
                    let (name, pos, _) = stack.pop().expect("len > 1");
                    return Err(err(
                        pos,
                        format!("block {name:?} is not closed: missing '}}'"),
                    ));
                }
                return Ok(stack.pop().expect("the top level").2);
            }
            Some((Tok::Close, pos)) => {
                if stack.len() == 1 {
                    return Err(err(pos, "'}' without a block to close".into()));
                }
                let (name, bpos, items) = stack.pop().expect("len > 1");
                stack
                    .last_mut()
                    .expect("the top level")
                    .2
                    .push(Item::Block {
                        name,
                        items,
                        pos: bpos,
                    });
                tok = next()?;
            }
            Some((Tok::Word(key), pos)) => {
                let mut after = next()?;
                if matches!(after, Some((Tok::Colon, _))) {
                    after = next()?;
                }
                if let Some((Tok::Open, _)) = after {
                    if stack.len() > MAX_DEPTH {
                        return Err(err(pos, format!("blocks nested deeper than {MAX_DEPTH}")));
                    }
                    stack.push((key, pos, vec![]));
                    tok = next()?;
                    continue;
                }
                let mut values = vec![];
                let mut want_value = true;
                loop {
                    match after {
                        Some((Tok::Word(v), _)) if want_value => {
                            values.push(v);
                            want_value = false;
                        }
                        Some((Tok::Word(v), _)) => {
                            // Space-separated values: `hosts a b;`.
                            values.push(v);
                        }
                        Some((Tok::Comma, p)) => {
                            if values.is_empty() || want_value {
                                return Err(err(p, format!("empty item in the list of {key:?}")));
                            }
                            want_value = true;
                        }
                        Some((Tok::Semi, p)) => {
                            if want_value && !values.is_empty() {
                                return Err(err(p, format!("the list of {key:?} ends with ','")));
                            }
                            break;
                        }
                        other => {
                            let at = other.as_ref().map_or(lx_end(text), |(_, p)| *p);
                            return Err(err(
                                at,
                                format!("expected ';' after {key:?}, found {}", describe(&other)),
                            ));
                        }
                    }
                    after = next()?;
                }
                stack
                    .last_mut()
                    .expect("the top level")
                    .2
                    .push(Item::Statement { key, values, pos });
                tok = next()?;
            }
            Some(other) => {
                let pos = other.1;
                let what = describe(&Some(other));
                return Err(err(
                    pos,
                    format!("expected a key or a block name, found {what}"),
                ));
            }
        }
    }
}

/// The position just past the end of `text`.
fn lx_end(text: &str) -> Pos {
    let mut pos = Pos { line: 1, col: 1 };
    for c in text.chars() {
        if c == '\n' {
            pos.line += 1;
            pos.col = 1;
        } else {
            pos.col += 1;
        }
    }
    pos
}

/// Which tenants a domain entry serves (`tenant_range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRange {
    /// `*`: every tenant, and the fallback when no other range matches.
    All,
    /// `N` or `N-M`, inclusive.
    Range(u32, u32),
}

impl TenantRange {
    pub fn contains(&self, id: u32) -> bool {
        match *self {
            TenantRange::All => true,
            TenantRange::Range(a, b) => a <= id && id <= b,
        }
    }
}

impl std::str::FromStr for TenantRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a tenant range: use *, N or N-M"))
        };
        if s == "*" {
            return Ok(TenantRange::All);
        }
        match s.split_once('-') {
            None => {
                let n = num(s)?;
                Ok(TenantRange::Range(n, n))
            }
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("tenant range {s:?} is empty: {a} is above {b}"));
                }
                Ok(TenantRange::Range(a, b))
            }
        }
    }
}

impl fmt::Display for TenantRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantRange::All => f.write_str("*"),
            TenantRange::Range(a, b) if a == b => write!(f, "{a}"),
            TenantRange::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// How a service picks among the live members of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastConnections,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "round_robin" | "roundrobin" | "round-robin" => Ok(Algorithm::RoundRobin),
            "least_connections" | "leastconn" | "least-connections" => {
                Ok(Algorithm::LeastConnections)
            }
            _ => Err(format!(
                "{s:?} is not a balancing algorithm: use round_robin or least_connections"
            )),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastConnections => "least_connections",
        })
    }
}

/// One `domains { <domain> { … } }` entry: a cluster domain and sub-domain
/// serving some hosts for some tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEntry {
    pub domain: String,
    pub sub_domain: Option<String>,
    pub tenant_range: TenantRange,
    /// Host names, lowercase; the service's when the entry names none.
    pub hosts: Vec<String>,
    /// Static members (`host:port`) for backends outside the cluster.
    pub members: Vec<String>,
    /// Where the entry starts in the file.
    pub pos: Pos,
}

/// Session affinity by cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Affinity {
    pub enabled: bool,
    /// How long a client sticks to its member after its last request.
    pub timeout: Duration,
}

/// One service (`appserver { … }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub entries: Vec<DomainEntry>,
    pub affinity: Affinity,
    pub algorithm: Option<Algorithm>,
}

/// A whole loadbalancer.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    pub services: Vec<Service>,
    /// `loadbalancer { fail_over … }`: retry failed requests on another member.
    pub fail_over: bool,
}

/// A key Wharf read but does not use, or does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub pos: Pos,
    pub message: String,
}

/// The seed's default session timeout (`session_timeout 90000`).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(90);

/// Keys of the WSO2 ELB that drive its autoscaler, which Wharf does not have.
const AUTOSCALER_KEYS: &[&str] = &[
    "instances",
    "enable_autoscaler",
    "enable_embedded_autoscaler",
    "autoscaler_task_interval",
    "autoscaler_service_epr",
    "server_startup_delay",
    "min_app_instances",
    "max_app_instances",
    "max_requests_per_second",
    "alarming_upper_rate",
    "alarming_lower_rate",
    "scale_down_factor",
    "rounds_to_average",
    "message_expiry_time",
    "queue_length_per_node",
    "payload",
    "availability_zone",
    "security_groups",
    "instance_type",
    "additional_info",
    "key_pair",
    "instances_per_scale_up",
];

#[derive(Clone, Copy)]
struct Inherited {
    affinity: Option<bool>,
    timeout: Option<Duration>,
    algorithm: Option<Algorithm>,
}

struct Interp<'a> {
    file: &'a str,
    warnings: Vec<Warning>,
}

impl Interp<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>) -> ConfError {
        ConfError {
            file: self.file.to_string(),
            pos,
            message: message.into(),
        }
    }

    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Warning {
            pos,
            message: message.into(),
        });
    }

    fn unknown(&mut self, pos: Pos, key: &str, within: &str) {
        if AUTOSCALER_KEYS.contains(&key) {
            self.warn(
                pos,
                format!("{key:?} in {within} is ignored: Wharf has no autoscaler"),
            );
        } else {
            self.warn(pos, format!("unknown key {key:?} in {within} is ignored"));
        }
    }

    fn one<'v>(&self, key: &str, values: &'v [String], pos: Pos) -> Result<&'v str, ConfError> {
        match values {
            [v] => Ok(v),
            [] => Err(self.err(pos, format!("{key:?} needs a value"))),
            _ => Err(self.err(
                pos,
                format!("{key:?} takes one value, found {}", values.len()),
            )),
        }
    }

    fn boolean(&self, key: &str, values: &[String], pos: Pos) -> Result<bool, ConfError> {
        match self.one(key, values, pos)? {
            "true" | "on" | "yes" => Ok(true),
            "false" | "off" | "no" => Ok(false),
            v => Err(self.err(pos, format!("{key:?}: {v:?} is not true or false"))),
        }
    }

    fn millis(&self, key: &str, values: &[String], pos: Pos) -> Result<Duration, ConfError> {
        let v = self.one(key, values, pos)?;
        v.parse::<u64>().map(Duration::from_millis).map_err(|_| {
            self.err(
                pos,
                format!("{key:?}: {v:?} is not a number of milliseconds"),
            )
        })
    }

    fn hosts(&self, values: &[String], pos: Pos) -> Result<Vec<String>, ConfError> {
        if values.is_empty() {
            return Err(self.err(pos, "\"hosts\" needs at least one host name"));
        }
        values
            .iter()
            .map(|h| {
                let ok = h == "*"
                    || (!h.is_empty()
                        && h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
                if ok {
                    Ok(h.to_ascii_lowercase())
                } else {
                    Err(self.err(pos, format!("{h:?} is not a host name")))
                }
            })
            .collect()
    }

    /// A key shared by `defaults`, a service and `loadbalancer`; `true` if it was one.
    fn common(
        &self,
        key: &str,
        values: &[String],
        pos: Pos,
        into: &mut Inherited,
    ) -> Result<bool, ConfError> {
        match key {
            "session_affinity" | "session-affinity" | "sessionAffinity" => {
                into.affinity = Some(self.boolean(key, values, pos)?)
            }
            "session_timeout" | "session-timeout" | "sessionTimeout" => {
                into.timeout = Some(self.millis(key, values, pos)?)
            }
            "algorithm" | "balancer" => {
                let v = self.one(key, values, pos)?;
                into.algorithm = Some(v.parse().map_err(|e: String| self.err(pos, e))?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn domain(
        &mut self,
        name: &str,
        items: &[Item],
        pos: Pos,
        service_hosts: &[String],
    ) -> Result<DomainEntry, ConfError> {
        let mut entry = DomainEntry {
            domain: name.to_string(),
            sub_domain: None,
            tenant_range: TenantRange::All,
            hosts: vec![],
            members: vec![],
            pos,
        };
        for item in items {
            match item {
                Item::Statement { key, values, pos } => match key.as_str() {
                    "hosts" | "host" => entry.hosts.extend(self.hosts(values, *pos)?),
                    "sub_domain" | "subDomain" | "sub-domain" => {
                        entry.sub_domain = Some(self.one(key, values, *pos)?.to_string())
                    }
                    "tenant_range" | "tenant-range" | "tenantRange" => {
                        let v = self.one(key, values, *pos)?;
                        entry.tenant_range = v.parse().map_err(|e: String| self.err(*pos, e))?;
                    }
                    "members" | "member" => {
                        for m in values {
                            let ok = m.rsplit_once(':').is_some_and(|(h, p)| {
                                !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                            });
                            if !ok {
                                return Err(
                                    self.err(*pos, format!("member {m:?} is not host:port"))
                                );
                            }
                            entry.members.push(m.clone());
                        }
                    }
                    _ => self.unknown(*pos, key, &format!("domain {name:?}")),
                },
                Item::Block { name: b, pos, .. } => self.warn(
                    *pos,
                    format!("unknown block {b:?} in domain {name:?} is ignored"),
                ),
            }
        }
        if entry.hosts.is_empty() {
            entry.hosts = service_hosts.to_vec();
        }
        if entry.hosts.is_empty() {
            return Err(self.err(
                pos,
                format!("domain {name:?} has no hosts: set \"hosts\" in it or in its service"),
            ));
        }
        Ok(entry)
    }

    fn service(
        &mut self,
        name: &str,
        items: &[Item],
        pos: Pos,
        defaults: Inherited,
    ) -> Result<Service, ConfError> {
        let mut own = defaults;
        let mut hosts = vec![];
        for item in items {
            if let Item::Statement { key, values, pos } = item {
                if key == "hosts" || key == "host" {
                    hosts.extend(self.hosts(values, *pos)?);
                } else if !self.common(key, values, *pos, &mut own)? {
                    self.unknown(*pos, key, &format!("service {name:?}"));
                }
            }
        }
        let mut entries = vec![];
        let mut saw_domains = false;
        for item in items {
            if let Item::Block {
                name: b,
                items,
                pos,
            } = item
            {
                if b == "domains" {
                    saw_domains = true;
                    for d in items {
                        match d {
                            Item::Block { name: dn, items, pos } => {
                                entries.push(self.domain(dn, items, *pos, &hosts)?)
                            }
                            Item::Statement { key, pos, .. } => {
                                return Err(self.err(
                                    *pos,
                                    format!("expected a domain block in \"domains\", found the statement {key:?}"),
                                ))
                            }
                        }
                    }
                } else {
                    self.warn(
                        *pos,
                        format!("unknown block {b:?} in service {name:?} is ignored"),
                    );
                }
            }
        }
        if !saw_domains || entries.is_empty() {
            return Err(self.err(pos, format!("service {name:?} has no domains")));
        }
        Ok(Service {
            name: name.to_string(),
            entries,
            affinity: Affinity {
                enabled: own.affinity.unwrap_or(false),
                timeout: own.timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT),
            },
            algorithm: own.algorithm,
        })
    }
}

impl Services {
    /// Reads a loadbalancer.conf's text. `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<(Services, Vec<Warning>), ConfError> {
        let tree = parse_tree(text, file)?;
        let mut it = Interp {
            file,
            warnings: vec![],
        };
        let mut lb = Inherited {
            affinity: None,
            timeout: None,
            algorithm: None,
        };
        let mut fail_over = true;
        let mut service_blocks: Vec<(&str, &[Item], Pos)> = vec![];
        let mut defaults_seen = None;
        for item in &tree {
            match item {
                Item::Block { name, items, pos } if name == "loadbalancer" => {
                    for i in items {
                        match i {
                            Item::Statement { key, values, pos } => {
                                if key == "fail_over" || key == "failover" {
                                    fail_over = it.boolean(key, values, *pos)?;
                                } else if !it.common(key, values, *pos, &mut lb)? {
                                    it.unknown(*pos, key, "loadbalancer");
                                }
                            }
                            Item::Block { name, pos, .. } => it.warn(
                                *pos,
                                format!("unknown block {name:?} in loadbalancer is ignored"),
                            ),
                        }
                    }
                    let _ = pos;
                }
                Item::Block { name, items, .. } if name == "services" => {
                    for s in items {
                        match s {
                            Item::Block { name, items, pos } if name == "defaults" => {
                                defaults_seen = Some((items.as_slice(), *pos))
                            }
                            Item::Block { name, items, pos } => {
                                service_blocks.push((name, items, *pos))
                            }
                            Item::Statement { key, pos, .. } => {
                                it.warn(*pos, format!("statement {key:?} in services is ignored: services holds blocks"))
                            }
                        }
                    }
                }
                // The seed shows a service block on its own, to be pasted
                // under `services`; a block with `domains` in it at the top
                // level is taken as one.
                Item::Block { name, items, pos }
                    if items
                        .iter()
                        .any(|i| matches!(i, Item::Block { name, .. } if name == "domains")) =>
                {
                    service_blocks.push((name, items, *pos))
                }
                Item::Block { name, pos, .. } => {
                    it.warn(*pos, format!("unknown block {name:?} is ignored"))
                }
                Item::Statement { key, pos, .. } => {
                    it.warn(*pos, format!("unknown top-level key {key:?} is ignored"))
                }
            }
        }
        let mut defaults = lb;
        if let Some((items, _)) = defaults_seen {
            for i in items {
                match i {
                    Item::Statement { key, values, pos } => {
                        if !it.common(key, values, *pos, &mut defaults)? {
                            it.unknown(*pos, key, "services.defaults");
                        }
                    }
                    Item::Block { name, pos, .. } => it.warn(
                        *pos,
                        format!("unknown block {name:?} in defaults is ignored"),
                    ),
                }
            }
        }
        let mut services: Vec<Service> = vec![];
        for (name, items, pos) in service_blocks {
            if services.iter().any(|s| s.name == name) {
                return Err(it.err(pos, format!("service {name:?} is defined twice")));
            }
            services.push(it.service(name, items, pos, defaults)?);
        }
        // A host belongs to one service: otherwise which one serves it
        // would depend on the order of the file.
        let mut owner: std::collections::BTreeMap<&str, &str> = Default::default();
        for s in &services {
            for e in &s.entries {
                for h in &e.hosts {
                    if let Some(other) = owner.insert(h, &s.name) {
                        if other != s.name {
                            return Err(it.err(
                                e.pos,
                                format!(
                                    "host {h:?} is in both service {other:?} and service {:?}",
                                    s.name
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok((
            Services {
                services,
                fail_over,
            },
            it.warnings,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's entries, verbatim, as it says to add them under `services`.
    pub const SEED: &str = "appserver {
  domains{
     wso2.as.domain {
        hosts mgt.as.cloud-test.wso2.com;
        sub_domain mgt;
        tenant_range *;
     }
     wso2.as.domain {
        hosts as.cloud-test.wso2.com;
        sub_domain worker;
        tenant_range *;
     }
   }
}
";

    fn parse(text: &str) -> Result<(Services, Vec<Warning>), ConfError> {
        Services::parse(text, "loadbalancer.conf")
    }

    fn check_seed(s: &Services) {
        assert_eq!(s.services.len(), 1);
        let svc = &s.services[0];
        assert_eq!(svc.name, "appserver");
        assert_eq!(svc.entries.len(), 2);
        let (mgt, worker) = (&svc.entries[0], &svc.entries[1]);
        assert_eq!(mgt.domain, "wso2.as.domain");
        assert_eq!(mgt.sub_domain.as_deref(), Some("mgt"));
        assert_eq!(mgt.hosts, vec!["mgt.as.cloud-test.wso2.com"]);
        assert_eq!(mgt.tenant_range, TenantRange::All);
        assert_eq!(worker.domain, "wso2.as.domain");
        assert_eq!(worker.sub_domain.as_deref(), Some("worker"));
        assert_eq!(worker.hosts, vec!["as.cloud-test.wso2.com"]);
    }

    #[test]
    fn the_seeds_entries_under_services() {
        let text = format!("services {{\n{SEED}}}\n");
        let (s, warnings) = parse(&text).unwrap();
        check_seed(&s);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(s.fail_over);
    }

    #[test]
    fn the_seeds_entries_alone() {
        let (s, warnings) = parse(SEED).unwrap();
        check_seed(&s);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    /// A whole WSO2 ELB 2.x file: loadbalancer block, defaults with
    /// autoscaler keys, the colon dialect, lists and ranges.
    #[test]
    fn a_full_elb_file_in_both_dialects() {
        let text = r#"
# the ELB's own settings
loadbalancer {
    instances           1;
    enable_autoscaler   false;
    autoscaler_task_interval 60000;
    session_timeout 90000;   # ms
    fail_over true;
}
services {
    defaults {
        min_app_instances       1;
        max_app_instances       3;
        session_affinity: true;
    }
    appserver {
        hosts: appserver.cloud-test.wso2.com, as.cloud-test.wso2.com;
        algorithm least_connections;
        domains   {
            wso2.as1.domain { tenant_range: 1-100; }
            wso2.as2.domain { tenant_range    101-200; }
            wso2.as3.domain { tenant_range    *; }
            wso2.as4.domain { tenant_range 7; hosts: seven.example.com; }
        }
    }
    esb {
        hosts esb.cloud-test.wso2.com;
        session_affinity false;
        domains {
            wso2.esb.domain {
                sub_domain: worker;
                members 10.0.0.5:8280, 10.0.0.6:8280;
            }
        }
    }
}
"#;
        let (s, warnings) = parse(text).unwrap();
        assert!(s.fail_over);
        let app = &s.services[0];
        assert!(app.affinity.enabled);
        assert_eq!(app.affinity.timeout, Duration::from_secs(90));
        assert_eq!(app.algorithm, Some(Algorithm::LeastConnections));
        assert_eq!(app.entries.len(), 4);
        assert_eq!(app.entries[0].tenant_range, TenantRange::Range(1, 100));
        assert_eq!(app.entries[1].tenant_range, TenantRange::Range(101, 200));
        assert_eq!(app.entries[2].tenant_range, TenantRange::All);
        assert_eq!(app.entries[3].tenant_range, TenantRange::Range(7, 7));
        assert_eq!(
            app.entries[0].hosts,
            vec!["appserver.cloud-test.wso2.com", "as.cloud-test.wso2.com"]
        );
        assert_eq!(app.entries[3].hosts, vec!["seven.example.com"]);
        assert_eq!(app.entries[0].sub_domain, None);
        let esb = &s.services[1];
        assert!(!esb.affinity.enabled);
        assert_eq!(
            esb.entries[0].members,
            vec!["10.0.0.5:8280", "10.0.0.6:8280"]
        );
        assert_eq!(esb.entries[0].sub_domain.as_deref(), Some("worker"));
        // The autoscaler keys are named and ignored.
        let text: Vec<String> = warnings
            .iter()
            .map(|w| format!("{}:{} {}", w.pos.line, w.pos.col, w.message))
            .collect();
        assert!(
            text.iter().any(|w| w.starts_with("4:5 ")
                && w.contains("\"instances\"")
                && w.contains("autoscaler")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|w| w.contains("min_app_instances")),
            "{text:?}"
        );
    }

    #[test]
    fn unknown_keys_are_warned_with_their_place() {
        let text = "services {\n  web {\n    hosts a.example;\n    colour blue;\n    domains { d { sub_domain w; flavour x; } }\n  }\n}\n";
        let (s, warnings) = parse(text).unwrap();
        assert_eq!(s.services[0].entries[0].hosts, vec!["a.example"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings[0].pos, Pos { line: 4, col: 5 });
        assert!(warnings[0].message.contains("\"colour\""));
        assert_eq!(warnings[1].pos, Pos { line: 5, col: 33 });
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn syntax_errors_say_file_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "services {\n  a {\n",
                "loadbalancer.conf:2:3: block \"a\" is not closed",
            ),
            (
                "services { }\n}\n",
                "loadbalancer.conf:2:1: '}' without a block to close",
            ),
            (
                "a {\n  hosts x.example\n}\n",
                "loadbalancer.conf:3:1: expected ';' after \"hosts\", found '}'",
            ),
            (
                "a { hosts x.example",
                "loadbalancer.conf:1:20: expected ';' after \"hosts\", found the end of the file",
            ),
            (
                "a { hosts x, , y; }",
                "loadbalancer.conf:1:14: empty item in the list of \"hosts\"",
            ),
            (
                "a { hosts x,; }",
                "loadbalancer.conf:1:13: the list of \"hosts\" ends with ','",
            ),
            (
                "; a { }",
                "loadbalancer.conf:1:1: expected a key or a block name, found ';'",
            ),
            (
                "a { hosts \"x; }",
                "loadbalancer.conf:1:11: unterminated quoted string",
            ),
        ];
        for (text, want) in cases {
            let got = error_of(text);
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn meaning_errors_say_where() {
        let cases: &[(&str, &str)] = &[
            (
                "s { domains { d { hosts a.example; tenant_range 5-1; } } }",
                "loadbalancer.conf:1:36: tenant range \"5-1\" is empty",
            ),
            (
                "s { domains { d { hosts a.example; tenant_range some; } } }",
                "loadbalancer.conf:1:36: \"some\" is not a tenant range",
            ),
            ("s { domains { d { sub_domain w; } } }", "loadbalancer.conf:1:15: domain \"d\" has no hosts"),
            ("services { s { hosts a.example; } }", "loadbalancer.conf:1:12: service \"s\" has no domains"),
            (
                "services { s { domains { d { hosts a.example; } } } t { domains { e { hosts A.example; } } } }",
                "loadbalancer.conf:1:67: host \"a.example\" is in both service \"s\" and service \"t\"",
            ),
            (
                "s { domains { d { hosts a.example; members nohost; } } }",
                "loadbalancer.conf:1:36: member \"nohost\" is not host:port",
            ),
            (
                "loadbalancer { fail_over maybe; }",
                "loadbalancer.conf:1:16: \"fail_over\": \"maybe\" is not true or false",
            ),
            ("s { hosts bad/host; domains { d { } } }", "loadbalancer.conf:1:5: \"bad/host\" is not a host name"),
        ];
        for (text, want) in cases {
            let got = error_of(text);
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "a {".repeat(10_000);
        assert!(error_of(&text).contains("nested deeper than"));
    }

    #[test]
    fn tenant_ranges() {
        for (s, r) in [
            ("*", TenantRange::All),
            ("7", TenantRange::Range(7, 7)),
            ("1-100", TenantRange::Range(1, 100)),
        ] {
            assert_eq!(s.parse::<TenantRange>().unwrap(), r);
            assert_eq!(r.to_string(), s);
        }
        assert!(TenantRange::Range(1, 100).contains(100));
        assert!(!TenantRange::Range(1, 100).contains(101));
        assert!("-3".parse::<TenantRange>().is_err());
        assert!("1-".parse::<TenantRange>().is_err());
    }

    proptest::proptest! {
        /// Whatever the bytes, the parser returns (no panic, no hang).
        #[test]
        fn never_panics(text in ".{0,400}") {
            let _ = parse(&text);
        }

        /// Any file built from valid pieces parses, and a tenant range
        /// written out reads back the same.
        #[test]
        fn ranges_round_trip(a in 0u32..1000, len in 0u32..1000, colon in proptest::bool::ANY) {
            let r = TenantRange::Range(a, a + len);
            let sep = if colon { ":" } else { "" };
            let text = format!("s {{ domains {{ d {{ hosts h.example; tenant_range{sep} {r}; }} }} }}");
            let (s, _) = parse(&text).unwrap();
            proptest::prop_assert_eq!(s.services[0].entries[0].tenant_range, r);
        }
    }
}
