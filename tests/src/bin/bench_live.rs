//! `cargo xtask bench-live [ANNOTATORS] [SECONDS] [REVIEWERS] [REPLICAS]`: many people on one
//! project at once, against a release `distillery` on loopback (defaults 200, 60, 10, 1).
//!
//! With one replica the studio keeps its metadata where the test harness says
//! (`DISTILLERY_TEST_DATABASE`: SQLite by default, or `postgres`); with more, that many `serve`
//! processes share one PostgreSQL database (the harness's own server) and the people are dealt
//! out between them in turn, as a load balancer would.
//!
//! Each annotator has its own account, image and live-channel connection, and sends one box
//! operation a second (create, then moves of its boxes) while listening; each reviewer listens
//! and lists the submitted images every few seconds. Printed: op→broadcast latency (from sending
//! the request to each listener receiving the event, p50/p99 over every delivery), operations per
//! second, the server's peak RSS and CPU, and lost or duplicated events (every listener checks
//! that it saw each sequence number once, and that its image's boxes rebuilt from the events
//! equal the server's). Anchors: CVAT slows past 10–30 users on a 2-core box (#5553, #1345);
//! Figma saves 95 % of edits within 600 ms.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::{LiveEvent, Role};
use e2e::live::LiveClient;
use e2e::{Studio, fixtures};
use serde_json::json;

/// When each operation was sent, by box id and revision.
type Sent = Arc<Mutex<HashMap<(String, u32), Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        Ok(std::env::args()
            .nth(i)
            .map(|n| n.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (annotators, seconds, reviewers) = (number(1, 200)?, number(2, 60)?, number(3, 10)?);
    let replica_count = number(4, 1)?;
    ensure!(
        annotators > 0 && annotators <= 1000 && seconds <= 600 && (1..=8).contains(&replica_count),
        "at most 1000 annotators, 600 s, 1 to 8 replicas"
    );
    let work = tempfile::tempdir()?;
    let replicas = start_replicas(work.path(), replica_count).await?;
    let studio = &replicas[0];
    let project = studio.create_project("Live bench", &["car"]).await?;
    let car = project.classes[0].id;

    eprintln!("{annotators} annotators and {reviewers} reviewers: accounts, images, connections…");
    let mut cast = Vec::new();
    for n in 0..annotators + reviewers {
        let (name, role) = if n < annotators {
            (format!("annotator{n}"), Role::Annotator)
        } else {
            (format!("reviewer{}", n - annotators), Role::Reviewer)
        };
        let session = studio.add_user(&name, "long enough password").await?;
        studio.add_member(project.id, &name, role).await?;
        let token = session.create_token(&studio.url, "bench").await?.token;
        cast.push((name, token));
    }
    let mut images = Vec::new();
    for n in 0..annotators {
        let (status, uploaded) = studio
            .upload(
                project.id,
                &[(&format!("{n}.jpg"), fixtures::numbered_jpeg(64, 48, n as u32))],
            )
            .await?;
        ensure!(status.is_success(), "upload: {uploaded}");
        images.push(uploaded[0]["id"].as_i64().context("image id")?);
    }
    let start_seq: api::ImageBoxes = studio
        .get(&format!("/api/images/{}/boxes", images[0]))
        .await?
        .json()
        .await?;

    // Everyone connects first (as a class does before it starts): the clock measures people
    // working, not 210 sockets joining — whose presence storm `live_channel_resumes` covers.
    // Person n is served by replica n mod the count, socket and requests alike.
    let replica_of = |n: usize| &replicas[n % replicas.len()];
    let mut sockets = Vec::new();
    for (n, (_, token)) in cast.iter().enumerate() {
        let image = images.get(n).copied();
        sockets.push(LiveClient::connect(&replica_of(n).url, token, project.id, start_seq.seq, image, None).await?);
    }
    let sent: Sent = Arc::default();
    let pids = replicas.iter().map(studio_pid).collect::<anyhow::Result<Vec<_>>>()?;
    let cpu_before = cpu_seconds(&pids)?;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds as u64);
    let mut listeners = Vec::new();
    let mut writers = Vec::new();
    for (n, ((_, token), live)) in cast.iter().zip(sockets).enumerate() {
        let image = images.get(n).copied();
        listeners.push(tokio::spawn(listen(live, sent.clone(), until)));
        let http = e2e::accounts::bearer_client(token)?;
        let url = replica_of(n).url.clone();
        let project_id = project.id;
        if let Some(image) = image {
            let sent = sent.clone();
            writers.push(tokio::spawn(async move {
                write(http, url, image, car, sent, until, n).await
            }));
        } else {
            writers.push(tokio::spawn(async move {
                review(http, url, project_id, until).await.map(|n| (n, Vec::new()))
            }));
        }
    }
    let mut ops = 0usize;
    let mut round_trips = Vec::new();
    for writer in writers {
        let (applied, times) = writer.await??;
        ops += applied;
        round_trips.extend(times);
    }
    round_trips.sort_by(f64::total_cmp);
    let trip = |q: f64| {
        round_trips
            .get(((round_trips.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&pids)? - cpu_before;

    // Everyone's view against the server's.
    let last: api::ImageBoxes = studio
        .get(&format!("/api/images/{}/boxes", images[0]))
        .await?
        .json()
        .await?;
    let mut latencies = Vec::new();
    let (mut lost, mut duplicated, mut diverged) = (0usize, 0usize, 0usize);
    for (n, listener) in listeners.into_iter().enumerate() {
        let heard = listener.await??;
        latencies.extend(heard.latencies_ms);
        duplicated += heard.duplicates;
        let expected = (last.seq - start_seq.seq) as usize;
        lost += expected.saturating_sub(heard.seqs);
        if let Some(image) = images.get(n) {
            let server: api::ImageBoxes = studio.get(&format!("/api/images/{image}/boxes")).await?.json().await?;
            let truth: BTreeMap<String, [f64; 4]> = server
                .boxes
                .iter()
                .map(|b| (b.id.clone(), [b.x0, b.y0, b.x1, b.y1]))
                .collect();
            if heard.boxes.get(image).cloned().unwrap_or_default() != truth {
                diverged += 1;
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let rss_mb = replicas.iter().map(|r| r.peak_rss_kib().unwrap_or(0)).sum::<u64>() as f64 / 1024.0;
    let database = match (replicas.len(), e2e::postgres::engine()) {
        (1, e2e::postgres::Engine::Sqlite) => "SQLite".to_owned(),
        (1, e2e::postgres::Engine::Postgres) => "PostgreSQL".to_owned(),
        (n, _) => format!("{n} replicas on one PostgreSQL"),
    };
    println!(
        "\n| {annotators} annotators + {reviewers} reviewers, {seconds} s, {database}, loopback, this machine | figure | goal / anchor |"
    );
    println!("|---|---|---|");
    println!(
        "| box operations applied | {ops} ({:.1}/s) | {annotators}/s sent |",
        ops as f64 / elapsed
    );
    println!(
        "| events delivered | {} | every op to every listener |",
        latencies.len()
    );
    println!(
        "| op request round trip p50 / p99 (send → applied answer) | {:.1} / {:.1} ms | |",
        trip(0.5),
        trip(0.99)
    );
    println!("| op → broadcast latency p50 | {:.1} ms | |", at(0.5));
    println!(
        "| op → broadcast latency p99 | {:.1} ms | < 50 ms; Figma: 95 % of edits saved within 600 ms |",
        at(0.99)
    );
    println!("| op → broadcast latency max | {:.1} ms | |", at(1.0));
    println!("| lost / duplicated events | {lost} / {duplicated} | 0 / 0 |");
    println!("| listeners whose image differs from the server's | {diverged} | 0 |");
    println!("| server peak RSS (all replicas) | {rss_mb:.0} MB | |");
    println!(
        "| server CPU (all replicas; not PostgreSQL's) | {:.0} % of one core ({cpu:.1} s over {elapsed:.0} s) | CVAT slows past 10–30 users on 2 cores |",
        100.0 * cpu / elapsed
    );
    Ok(())
}

/// What one listener heard.
struct Heard {
    latencies_ms: Vec<f64>,
    seqs: usize,
    duplicates: usize,
    boxes: HashMap<i64, BTreeMap<String, [f64; 4]>>,
}

async fn listen(mut live: LiveClient, sent: Sent, until: Instant) -> anyhow::Result<Heard> {
    let mut heard = Heard {
        latencies_ms: Vec::new(),
        seqs: 0,
        duplicates: 0,
        boxes: HashMap::new(),
    };
    let mut last = 0i64;
    // Listen a little past the end, for the last operations' events.
    let end = until + Duration::from_secs(3);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let Ok(event) = live.next(left).await else { break };
        if let Some(seq) = event.seq() {
            if seq <= last {
                heard.duplicates += 1;
                continue;
            }
            last = seq;
            heard.seqs += 1;
        }
        if let LiveEvent::Box {
            image_id, box_id, bbox, ..
        } = event
        {
            let image = heard.boxes.entry(image_id).or_default();
            match bbox {
                Some(b) => {
                    let at = sent
                        .lock()
                        .ok()
                        .and_then(|s| s.get(&(box_id.clone(), b.revision)).copied());
                    if let Some(at) = at {
                        heard.latencies_ms.push(at.elapsed().as_secs_f64() * 1000.0);
                    }
                    image.insert(box_id, [b.x0, b.y0, b.x1, b.y1]);
                }
                None => {
                    image.remove(&box_id);
                }
            }
        }
    }
    Ok(heard)
}

/// One operation a second until `until`: a new box every fifth, otherwise a move of the last.
async fn write(
    http: reqwest::Client,
    url: String,
    image: i64,
    class_id: u32,
    sent: Sent,
    until: Instant,
    n: usize,
) -> anyhow::Result<(usize, Vec<f64>)> {
    // Spread the writers over the second.
    tokio::time::sleep(Duration::from_millis((n as u64 * 997) % 1000)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut applied, mut box_number, mut revision) = (0usize, 0u32, 0u32);
    let mut round_trips = Vec::new();
    let mut id = String::new();
    while Instant::now() < until {
        tick.tick().await;
        let x = f64::from(applied as u32 % 30);
        let op = if applied % 5 == 0 {
            box_number += 1;
            id = format!("{n:08x}-0000-4000-8000-{box_number:012x}");
            revision = 1;
            json!({"op": "create", "box": {"id": id, "class_id": class_id, "x0": x, "y0": 2, "x1": x + 10.0, "y1": 20}})
        } else {
            revision += 1;
            json!({"op": "update", "base_rev": revision - 1,
                   "box": {"id": id, "class_id": class_id, "x0": x, "y0": 3, "x1": x + 12.0, "y1": 22}})
        };
        let at = Instant::now();
        if let Ok(mut s) = sent.lock() {
            s.insert((id.clone(), revision), at);
        }
        let response = http
            .post(format!("{url}/api/images/{image}/ops"))
            .json(&json!({ "ops": [op] }))
            .send()
            .await?;
        ensure!(response.status().is_success(), "ops: {}", response.text().await?);
        response.bytes().await?;
        round_trips.push(at.elapsed().as_secs_f64() * 1000.0);
        applied += 1;
    }
    Ok((applied, round_trips))
}

/// A reviewer's reads: the submitted images, every few seconds.
async fn review(http: reqwest::Client, url: String, project_id: i64, until: Instant) -> anyhow::Result<usize> {
    while Instant::now() < until {
        let response = http
            .get(format!(
                "{url}/api/projects/{project_id}/images?status=submitted&limit=50"
            ))
            .send()
            .await?;
        ensure!(response.status().is_success(), "review list: {}", response.status());
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Ok(0)
}

fn studio_pid(studio: &Studio) -> anyhow::Result<u32> {
    studio.pid().context("the server has exited")
}

/// One studio, or `count` replicas of one on a shared PostgreSQL database.
async fn start_replicas(work: &std::path::Path, count: usize) -> anyhow::Result<Vec<Studio>> {
    if count == 1 {
        return Ok(vec![Studio::start_in(&work.join("studio")).await?]);
    }
    let postgres = e2e::postgres::Postgres::started().await?;
    let database = postgres.database("bench_live").await?;
    let mut replicas = Vec::new();
    for _ in 0..count {
        replicas.push(Studio::start_with_env(&[], &[("DISTILLERY_DATABASE_URL", database.clone())]).await?);
    }
    Ok(replicas)
}

/// The processes' user + system CPU time so far (`/proc/PID/stat`).
fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|pid| process_cpu_seconds(*pid)).sum()
}

fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counted from the state.
    Ok((ticks(11) + ticks(12)) / 100.0)
}
