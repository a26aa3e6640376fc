//! Absolute URLs the node hands out. As with catalina's `proxyPort`, they
//! name the port clients reach (the load balancer's) when one is set, and
//! the host name from carbon.xml's `HostName`, not whatever the request said.

use wharf_config::ServerConfig;

#[derive(Clone, Debug)]
pub struct Urls {
    host: String,
    mgt_host: String,
    http_port: u16,
    https_port: u16,
}

impl Urls {
    /// `bound_http`/`bound_https` are the ports actually bound (they differ
    /// from the configured ones when those are 0).
    pub fn new(cfg: &ServerConfig, bound_http: u16, bound_https: u16) -> Urls {
        Urls {
            host: cfg.host_name.clone(),
            mgt_host: cfg.mgt_host_name.clone(),
            http_port: cfg.http.proxy_port.unwrap_or(bound_http),
            https_port: cfg.https.proxy_port.unwrap_or(bound_https),
        }
    }

    /// The port clients reach plain HTTP on: the proxy port, else the bound one.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The port clients reach HTTPS on: the proxy port, else the bound one.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// `http://host[:port]` with the port left out when it is 80.
    pub fn http_base(&self) -> String {
        base("http", &self.host, self.http_port, 80)
    }

    /// `https://host[:port]` with the port left out when it is 443.
    pub fn https_base(&self) -> String {
        base("https", &self.host, self.https_port, 443)
    }

    /// The management console's base, on the management host name.
    pub fn mgt_https_base(&self) -> String {
        base("https", &self.mgt_host, self.https_port, 443)
    }

    /// The HTTPS URL of `path_and_query` on this node's public host name.
    pub fn https_url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.https_base(), path_and_query)
    }
}

fn base(scheme: &str, host: &str, port: u16, default: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == default {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_ports_and_host_name_win() {
        let mut cfg = wharf_config::NodeConfig::defaults().server;
        cfg.host_name = "as.example.com".into();
        cfg.mgt_host_name = "mgt.as.example.com".into();
        let urls = Urls::new(&cfg, 40001, 40002);
        assert_eq!(urls.https_url("/a?b"), "https://as.example.com:40002/a?b");
        cfg.https.proxy_port = Some(443);
        cfg.http.proxy_port = Some(8280);
        let urls = Urls::new(&cfg, 40001, 40002);
        assert_eq!(urls.https_url("/a"), "https://as.example.com/a");
        assert_eq!(urls.http_base(), "http://as.example.com:8280");
        assert_eq!(urls.mgt_https_base(), "https://mgt.as.example.com");
    }
}
