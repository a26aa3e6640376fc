//! Deployment benchmark: how long from the deploy call until every worker
//! serves the new revision, for a load balancer, a manager and 3 workers
//! as real processes on loopback (builtin repository). Run through
//! `bench/deploy.sh`, which builds the release binary this drives.
//!
//!   deploy_bench WHARF_BIN [DEPLOYS] [WORKERS]

use std::path::PathBuf;
use std::time::{Duration, Instant};
use wharf_testkit::{fixtures, TestCluster};

/// Carbon's deployment synchronizer checks the repository every 15 s
/// (its default), so a worker sees a commit up to 15 s later.
const CARBON_PERIOD: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(
        args.next()
            .expect("usage: deploy_bench WHARF_BIN [DEPLOYS] [WORKERS]"),
    );
    let deploys: usize = args.next().map_or(10, |a| a.parse().expect("DEPLOYS"));
    let workers: usize = args.next().map_or(3, |a| a.parse().expect("WORKERS"));

    // Production settings: gossip every 200 ms (the default), the LB's too.
    let c = TestCluster::start_with_gossip(&bin, workers, "", 200);
    c.wait_ready(workers).await;
    // A first revision, so that every measured deploy replaces one.
    let (s, r) = c.deploy("/bench", &fixtures::says("warm-up\n")).await;
    assert_eq!(s, 201, "{r}");
    let client = reqwest::Client::new();
    let urls: Vec<String> = c.workers.iter().map(|w| w.url("/bench")).collect();
    let mut times = vec![];
    for i in 1..=deploys {
        let body = format!("revision {i}\n");
        let component = fixtures::says(&body);
        let started = Instant::now();
        let admin = c.admin_client();
        let call = admin
            .post(c.api("/apps"))
            .query(&[("context", "/bench"), ("wait", "false")])
            .basic_auth("admin", Some(wharf_testkit::cluster::ADMIN_PASSWORD))
            .body(component)
            .send();
        let resp = call.await.expect("the deploy call");
        assert!(
            resp.status().is_success(),
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let answered = started.elapsed();
        // Every worker, asked directly, answers with the new revision.
        let mut pending: Vec<&String> = urls.iter().collect();
        while !pending.is_empty() {
            let mut still = vec![];
            for u in pending {
                let ok = match client.get(u.as_str()).send().await {
                    Ok(r) => r.text().await.map(|t| t == body).unwrap_or(false),
                    Err(_) => false,
                };
                if !ok {
                    still.push(u);
                }
            }
            pending = still;
            if started.elapsed() > Duration::from_secs(60) {
                panic!("deploy {i}: not served by every worker within 60 s");
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let t = started.elapsed();
        println!(
            "deploy {i:>2}: call answered in {:>6.1} ms, every worker serving after {:>6.1} ms",
            answered.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e3
        );
        times.push(t);
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = *times.last().expect("at least one deploy");
    println!();
    println!("workers: {workers}, deploys: {deploys}");
    println!(
        "deploy call -> every worker serving: median {:.0} ms, max {:.0} ms",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!(
        "Carbon's synchronizer period: {} s (a commit reaches a worker within it); median / period = {:.3}",
        CARBON_PERIOD.as_secs(),
        median.as_secs_f64() / CARBON_PERIOD.as_secs_f64()
    );
    println!(
        "target: median under 1 s: {}",
        if median < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
}
