//! The builtin repository as a worker reaches it: the manager's HTTPS
//! listener, `/_wharf/sync/v1/<tenant>/…`.
//!
//! Nothing here trusts the network. The manager's certificate is pinned to
//! the fingerprint it published in (authenticated) gossip, the worker
//! presents a token derived from the cluster secret, a manifest fetched for
//! an announced revision must have the announced SHA-256, and every
//! component must have the SHA-256 its manifest names.

use crate::{check_blob, sha256_hex, tree::parse_manifest, RepoError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use wharf_proto::gossip::RevisionRef;
use wharf_proto::{Manifest, TenantId};

/// The path prefix of the synchronizer's endpoints on a manager.
pub const SYNC_PREFIX: &str = "/_wharf/sync/v1/";

/// Where a manager serves its builtin repository, from its gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerEndpoint {
    pub node_id: String,
    /// `host:port` of its HTTPS listener.
    pub https_addr: String,
    /// SHA-256 of the certificate it presents there.
    pub tls_sha256: String,
}

pub struct RemoteBuiltin {
    token: Option<String>,
    timeout: Duration,
    /// One client per pinned certificate (so connections are reused).
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

impl RemoteBuiltin {
    /// `token` is [`wharf_cluster`]'s member token (none when the cluster
    /// runs without a secret).
    pub fn new(token: Option<String>, timeout: Duration) -> RemoteBuiltin {
        RemoteBuiltin {
            token,
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, pin: &str) -> Result<reqwest::Client, RepoError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(pin) {
            return Ok(c.clone());
        }
        let tls = wharf_net::tls::pinned_client_config(pin, &[b"h2", b"http/1.1"]);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| RepoError::Backend(format!("cannot build an HTTPS client: {e}")))?;
        clients.insert(pin.to_string(), client.clone());
        Ok(client)
    }

    async fn get(
        &self,
        ep: &ManagerEndpoint,
        path: &str,
    ) -> Result<Option<bytes::Bytes>, RepoError> {
        let url = format!("https://{}{SYNC_PREFIX}{path}", ep.https_addr);
        let mut req = self.client(&ep.tls_sha256)?.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let failed =
            |e: reqwest::Error| RepoError::Backend(format!("manager {} ({url}): {e}", ep.node_id));
        let resp = req.send().await.map_err(failed)?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.bytes().await.map_err(failed)?)),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => {
                let body = resp.text().await.unwrap_or_default();
                Err(RepoError::Backend(format!(
                    "manager {} answered {s} for {url}: {}",
                    ep.node_id,
                    body.trim()
                )))
            }
        }
    }

    /// The manifest of the announced revision (checked against the
    /// announcement), or the manager's current one when none is announced.
    pub async fn manifest(
        &self,
        ep: &ManagerEndpoint,
        tenant: TenantId,
        announced: Option<&RevisionRef>,
    ) -> Result<Option<Manifest>, RepoError> {
        let path = match announced {
            Some(r) => format!("{tenant}/revisions/{}", r.number),
            None => format!("{tenant}/head"),
        };
        let Some(bytes) = self.get(ep, &path).await? else {
            return match announced {
                Some(r) => Err(RepoError::Backend(format!(
                    "manager {} announced revision {} but does not have it",
                    ep.node_id, r.number
                ))),
                None => Ok(None),
            };
        };
        if let Some(r) = announced {
            let got = sha256_hex(&bytes);
            if got != r.manifest_sha256 {
                return Err(RepoError::Integrity(format!(
                    "the manifest of revision {} has SHA-256 {got}, but {} announced {}",
                    r.number, ep.node_id, r.manifest_sha256
                )));
            }
        }
        parse_manifest(&bytes, &path).map(Some)
    }

    /// One component, checked against its SHA-256.
    pub async fn blob(
        &self,
        ep: &ManagerEndpoint,
        tenant: TenantId,
        sha256: &str,
    ) -> Result<Vec<u8>, RepoError> {
        let path = format!("{tenant}/blobs/{sha256}");
        let bytes = self.get(ep, &path).await?.ok_or_else(|| {
            RepoError::Backend(format!(
                "manager {} does not have component {sha256}",
                ep.node_id
            ))
        })?;
        check_blob(
            sha256,
            &bytes,
            &format!("component {sha256} from {}", ep.node_id),
        )?;
        Ok(bytes.to_vec())
    }
}
