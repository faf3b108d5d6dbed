//! Poison data and lost replies: records and state values corrupted behind
//! the backend's back, and claims whose replies are lost or whose requests
//! run late. Every case checks that the stored counts still match the
//! tasks' states: no script stops half-way.
//!
//! Needs `ERRAND_REDIS_URL`: without it the tests are reported as ignored
//! (and `ERRAND_REQUIRE_SERVICES=1` fails the build instead).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{counts_match_states, hget, hset, key, raw, seq};
use errand_redis::RedisBackend;
use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::testing::workflows::Diamond;
use errand_runtime::workflow::{RunState, WorkflowExt};
use errand_runtime::{
    Backend, BackendExt, Enqueue, Error, Expose, Job, JobError, JsonCodec, TaskCx, TaskId, TaskSink, TaskState,
    Timestamp, Workflow,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Work {
    n: u64,
}

impl Job for Work {
    const NAME: &'static str = "fault_work";
    const QUEUE: &'static str = "faults";
    type Output = u64;
    async fn run(self, _cx: TaskCx) -> Result<u64, JobError> {
        Ok(self.n)
    }
}

fn registration(id: &str, queue: &'static str, job: &'static str, workflow_steps: bool) -> WorkerRegistration {
    WorkerRegistration {
        id: id.into(),
        queue: queue.into(),
        job,
        concurrency: 16,
        started_at: Timestamp::now(),
        workflow_steps,
    }
}

fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    result.unwrap_or_else(|error| panic!("{what} failed: {error}"))
}

async fn info<B: Expose>(backend: &B, id: TaskId) -> errand_runtime::TaskInfo {
    ok(backend.task(id).await, "task").unwrap_or_else(|| panic!("task {id} is gone"))
}

/// One ack call whose batch holds a task with an unreadable record and one
/// with a malformed state value, among good ones of every outcome: the two
/// go dead with the read error, the others take their outcome, the call
/// succeeds, and no count drifts (the ack script used to raise at the
/// unreadable record after writing the earlier outcomes).
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn poison_in_an_ack_batch_drifts_no_count() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut conn = raw(&url).await;
    let ns = backend.namespace().to_owned();
    let worker = registration("acker", Work::QUEUE, Work::NAME, false);
    // Unique keys: the ack reads these tasks' records.
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(ok(backend.enqueue_with(Work { n }, Enqueue::new().unique_key(format!("k{n}"))).await, "enqueue"));
    }
    ok(backend.heartbeat(&worker).await, "heartbeat");
    assert_eq!(ok(backend.claim(&worker, 10).await, "claim").tasks.len(), 6);
    hset(&mut conn, &key(&ns, Work::QUEUE, "t"), seq(ids[2]), b"garbage").await;
    hset(&mut conn, &key(&ns, Work::QUEUE, "s"), seq(ids[4]), b"r1|zz").await;
    let later = Timestamp(Timestamp::now().as_millis() + 3_600_000);
    let acks = [
        Outcome::Done { result: b"0".to_vec() },
        Outcome::Retry { at: later, error: "again".into() },
        Outcome::Done { result: b"2".to_vec() },
        Outcome::Dead { error: "boom".into() },
        Outcome::Retry { at: later, error: "again".into() },
        Outcome::Snooze { at: later },
    ];
    let acks: Vec<Ack> = ids.iter().zip(acks).map(|(id, outcome)| Ack { id: *id, outcome }).collect();
    ok(backend.ack(&worker, &acks).await, "an ack batch with poison in it");

    let states: Vec<TaskState> = {
        let mut states = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i == 2 {
                // Its record stays unreadable: read its state raw.
                let state = hget(&mut conn, &key(&ns, Work::QUEUE, "s"), seq(*id)).await;
                assert!(state.starts_with(b"x1|"), "{:?}", String::from_utf8_lossy(&state));
                states.push(TaskState::Dead);
            } else {
                states.push(info(&backend, *id).await.state);
            }
        }
        states
    };
    use TaskState::{Dead, Done, Pending, Retry};
    assert_eq!(states, vec![Done, Retry, Dead, Dead, Dead, Pending]);
    let error = String::from_utf8_lossy(&hget(&mut conn, &key(&ns, Work::QUEUE, "e"), seq(ids[2])).await).into_owned();
    assert!(error.contains("record cannot be read") && error.contains("recorded as done"), "{error}");
    let error = info(&backend, ids[4]).await.last_error.unwrap_or_default();
    assert!(error.contains("`r1|zz` is malformed") && error.contains("recorded as retried"), "{error}");
    let counts = counts_match_states(&mut conn, &ns, Work::QUEUE).await;
    assert_eq!(counts.get("running"), None, "{counts:?}");
    // The done task freed its unique key; the poisoned one's record cannot
    // say which key it held.
    let again = ok(backend.enqueue_with(Work { n: 0 }, Enqueue::new().unique_key("k0")).await, "enqueue");
    assert_ne!(again, ids[0]);
}

/// A workflow step fails while a sibling step's record is unreadable: the
/// run fails, the sibling is cancelled all the same (its worker is told),
/// and no count drifts (the ack script used to raise while cancelling the
/// sibling, after writing the failure).
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_step_failing_beside_an_unreadable_sibling_fails_its_run() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut conn = raw(&url).await;
    let ns = backend.namespace().to_owned();
    let worker = registration("steps", Diamond::QUEUE, Diamond::NAME, true);
    let run = ok(backend.start(Diamond(1)).await, "start");
    ok(backend.heartbeat(&worker).await, "heartbeat");
    let fetch = ok(backend.claim(&worker, 10).await, "claim").tasks;
    assert_eq!(fetch.len(), 1);
    ok(backend.ack(&worker, &[Ack { id: fetch[0].id, outcome: Outcome::Done { result: b"2".to_vec() } }]).await, "ack");
    let middle = ok(backend.claim(&worker, 10).await, "claim").tasks;
    assert_eq!(middle.len(), 2, "double and label");
    let status = ok(backend.workflow(run).status().await, "status");
    let (double, label) = (status.steps[1].task, status.steps[2].task);
    let (Some(double), Some(label)) = (double, label) else { panic!("{status:?}") };
    hset(&mut conn, &key(&ns, Diamond::QUEUE, "t"), seq(label), b"garbage").await;
    ok(backend.ack(&worker, &[Ack { id: double, outcome: Outcome::Dead { error: "boom".into() } }]).await, "ack");

    match backend.workflow(run).wait_timeout(Duration::from_secs(5)).await {
        Err(Error::RunFailed { error, .. }) => assert_eq!(error, "step `double` failed: boom"),
        other => panic!("expected the run to fail, got {other:?}"),
    }
    let state = hget(&mut conn, &key(&ns, Diamond::QUEUE, "s"), seq(label)).await;
    assert!(state.starts_with(b"c1|"), "the sibling is cancelled: {:?}", String::from_utf8_lossy(&state));
    assert_eq!(ok(backend.cancelled_tasks(&worker).await, "cancelled"), vec![label]);
    counts_match_states(&mut conn, &ns, Diamond::QUEUE).await;
}

/// Due delayed tasks with poison in their stored data never block the
/// claims of their job: a record cut short and a malformed state value go
/// dead with the read error, a record whose run_at is 14 digits long (the
/// year 2361) is claimed like any other (its ready-set entry used to hide
/// its seq, and it was dropped unclaimed), and later claims go on.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn poison_in_the_delayed_set_blocks_no_claim() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut conn = raw(&url).await;
    let ns = backend.namespace().to_owned();
    let records = key(&ns, Work::QUEUE, "t");
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(ok(
            backend.enqueue_with(Work { n }, Enqueue::new().delay(Duration::from_millis(300))).await,
            "enqueue",
        ));
    }
    let (short, late, bad_state, good) = (ids[0], ids[1], ids[2], ids[3]);
    let record = hget(&mut conn, &records, seq(short)).await;
    hset(&mut conn, &records, seq(short), &record[..10]).await;
    let mut record = hget(&mut conn, &records, seq(late)).await;
    // run_at is the double at bytes 15..23 of the record.
    record[15..23].copy_from_slice(&12_345_678_901_234_f64.to_be_bytes());
    hset(&mut conn, &records, seq(late), &record).await;
    hset(&mut conn, &key(&ns, Work::QUEUE, "s"), seq(bad_state), b"p0|zz").await;

    let worker = registration("delayed", Work::QUEUE, Work::NAME, false);
    ok(backend.heartbeat(&worker).await, "heartbeat");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim");
    let mut got: Vec<TaskId> = claimed.tasks.iter().map(|t| t.id).collect();
    got.sort();
    assert_eq!(got, vec![late, good], "the readable tasks are claimed, the 2361 one included");
    let state = hget(&mut conn, &key(&ns, Work::QUEUE, "s"), seq(short)).await;
    assert!(state.starts_with(b"x1|"), "{:?}", String::from_utf8_lossy(&state));
    let error = String::from_utf8_lossy(&hget(&mut conn, &key(&ns, Work::QUEUE, "e"), seq(short)).await).into_owned();
    assert!(error.contains(&format!("read task {short}")), "{error}");
    let error = info(&backend, bad_state).await;
    assert_eq!(error.state, TaskState::Dead);
    assert!(error.last_error.unwrap_or_default().contains("`p0|zz` is malformed"));
    // Claims go on.
    let fresh = ok(backend.enqueue(Work { n: 9 }).await, "enqueue");
    let claimed = ok(backend.claim(&worker, 10).await, "claim");
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![fresh]);
    let counts = counts_match_states(&mut conn, &ns, Work::QUEUE).await;
    assert_eq!((counts.get("running"), counts.get("dead")), (Some(&3), Some(&2)), "{counts:?}");
}

/// A running task whose state value is malformed is not stranded by a
/// release or a rescue: it goes dead saying so, the others go back, and no
/// count drifts (such a task used to stay `running` for nobody).
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn running_tasks_with_malformed_states_are_not_stranded() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.orphan_after(Duration::from_millis(200)));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let mut conn = raw(&url).await;
    let ns = backend.namespace().to_owned();
    let states = key(&ns, Work::QUEUE, "s");
    let ids = ok(backend.enqueue_bulk((0..4).map(|n| Work { n })).await, "enqueue");

    let releasing = registration("releasing", Work::QUEUE, Work::NAME, false);
    ok(backend.heartbeat(&releasing).await, "heartbeat");
    assert_eq!(ok(backend.claim(&releasing, 2).await, "claim").tasks.len(), 2);
    hset(&mut conn, &states, seq(ids[0]), b"q1|").await;
    assert_eq!(ok(backend.release(&releasing).await, "release"), 1);

    let lost = registration("lost", Work::QUEUE, Work::NAME, false);
    ok(backend.heartbeat(&lost).await, "heartbeat");
    let claimed = ok(backend.claim(&lost, 2).await, "claim").tasks;
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[1], ids[2]]);
    hset(&mut conn, &states, seq(ids[2]), b"r1|x").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ok(backend.rescue_orphans().await, "rescue"), 2);

    for (id, why) in [(ids[0], "released by worker `releasing`"), (ids[2], "worker `lost` stopped heartbeating")] {
        let task = info(&backend, id).await;
        let error = task.last_error.unwrap_or_default();
        assert_eq!(task.state, TaskState::Dead, "{error}");
        assert!(error.contains(why) && error.contains("is malformed"), "task {id}: {error}");
    }
    let counts = counts_match_states(&mut conn, &ns, Work::QUEUE).await;
    assert_eq!((counts.get("pending"), counts.get("dead"), counts.get("running")), (Some(&2), Some(&2), None));
}

/// A loopback proxy that can hold what clients send, drop what the server
/// answers, and sever the clients while keeping their server connections —
/// to deliver what it held later, as a request queued on a connection that
/// broke reaches a busy server late.
struct HoldingProxy {
    addr: SocketAddr,
    hold: Arc<AtomicBool>,
    drop_replies: Arc<AtomicBool>,
    /// Fired by `sever`, replaced for the connections that come after.
    sever: Arc<Mutex<CancellationToken>>,
    release: CancellationToken,
}

impl HoldingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("proxy address: {e}"));
        let proxy = Self {
            addr,
            hold: Arc::default(),
            drop_replies: Arc::default(),
            sever: Arc::new(Mutex::new(CancellationToken::new())),
            release: CancellationToken::new(),
        };
        let (hold, drop_replies, sever, release) =
            (proxy.hold.clone(), proxy.drop_replies.clone(), proxy.sever.clone(), proxy.release.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let severed = sever.lock().unwrap_or_else(PoisonError::into_inner).clone();
                tokio::spawn(forward(client, server, hold.clone(), drop_replies.clone(), severed, release.clone()));
            }
        });
        proxy
    }

    /// Closes every client connection open now (new ones are forwarded
    /// plainly); their server sides wait for [`release`](Self::release).
    ///
    /// The old connections' token fires before the flags are reset, and a
    /// severed connection drops what it reads from the server: a reply in
    /// flight while it is severed never reaches the client, whichever way
    /// the two race.
    fn sever(&self) {
        let mut token = self.sever.lock().unwrap_or_else(PoisonError::into_inner);
        token.cancel();
        *token = CancellationToken::new();
        drop(token);
        self.hold.store(false, Ordering::SeqCst);
        self.drop_replies.store(false, Ordering::SeqCst);
    }

    /// Sends what the severed connections held to the server.
    fn release(&self) {
        self.release.cancel();
    }
}

async fn forward(
    mut client: TcpStream,
    server: TcpStream,
    hold: Arc<AtomicBool>,
    drop_replies: Arc<AtomicBool>,
    severed: CancellationToken,
    release: CancellationToken,
) {
    let (mut from_server, mut to_server) = server.into_split();
    let mut held = Vec::new();
    let (mut up, mut down) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    loop {
        tokio::select! {
            () = severed.cancelled() => break,
            read = client.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) if hold.load(Ordering::SeqCst) || severed.is_cancelled() => held.extend_from_slice(&up[..n]),
                Ok(n) => if to_server.write_all(&up[..n]).await.is_err() { return },
            },
            read = from_server.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) if drop_replies.load(Ordering::SeqCst) || severed.is_cancelled() => {}
                Ok(n) => if client.write_all(&down[..n]).await.is_err() { return },
            },
        }
    }
    drop(client);
    if held.is_empty() {
        return;
    }
    release.cancelled().await;
    if to_server.write_all(&held).await.is_ok() {
        // Let the server answer (into the void) before the connection goes.
        let _ = tokio::time::timeout(Duration::from_secs(2), from_server.read(&mut down)).await;
    }
}

/// `redis://[userinfo@]host:port[/db]` → (`host:port`, the same URL pointing at `proxy`).
fn through(url: &str, proxy: SocketAddr) -> (String, String) {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:6379") };
    let proxied = format!("{}{userinfo}{proxy}{}", &url[..scheme_end], &rest[authority_end..]);
    (hostport, proxied)
}

/// A backend on `namespace` whose connection goes through `proxy` (its
/// workers are rescued 300 ms after their last heartbeat).
async fn proxied(url: &str, proxy: &HoldingProxy, namespace: &str) -> RedisBackend {
    let (_, proxied_url) = through(url, proxy.addr);
    let builder = RedisBackend::builder()
        .namespace(namespace)
        .response_timeout(Duration::from_secs(2))
        .tuning(|t| t.orphan_after(Duration::from_millis(300)));
    ok(builder.connect(&proxied_url).await, "connect through the proxy")
}

/// A claim whose request is stuck on a connection that breaks fails; the
/// worker's next claim (on a new connection) runs first; when the stuck
/// request reaches the server at last, its claim takes nothing — before,
/// it claimed tasks for a worker that had given it up, and they stayed
/// `running` for that live worker until it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_lost_claim_that_runs_late_takes_nothing() {
    let url = common::url();
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let ns = direct.namespace().to_owned();
    let proxy = HoldingProxy::start(through(&url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"))).0).await;
    let backend = proxied(&url, &proxy, &ns).await;
    let ids = ok(direct.enqueue_bulk((0..20).map(|n| Work { n })).await, "enqueue");
    let worker = registration("late", Work::QUEUE, Work::NAME, false);
    ok(backend.heartbeat(&worker).await, "heartbeat");

    proxy.hold.store(true, Ordering::SeqCst);
    let stuck = {
        let (backend, worker) = (backend.clone(), worker.clone());
        tokio::spawn(async move { backend.claim(&worker, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.sever();
    let stuck = stuck.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(stuck.is_err(), "the stuck claim fails: {stuck:?}");

    let claimed = ok(backend.claim(&worker, 5).await, "the next claim");
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids[..5], "the first five");
    proxy.release();
    let mut conn = raw(&url).await;
    // The late request runs now: wait until the server has answered it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = ok(direct.queue_counts(Work::QUEUE).await, "counts").running;
    assert_eq!(running, 5, "the late claim took tasks for a worker that gave it up");
    let inflight: Vec<u64> = redis::cmd("SMEMBERS")
        .arg(key(&ns, Work::QUEUE, "if:late"))
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inflight.len(), 5, "{inflight:?}");
    // The worker goes on, and gets everything else.
    let acks: Vec<Ack> =
        claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: b"0".to_vec() } }).collect();
    ok(backend.ack(&worker, &acks).await, "ack");
    let rest = ok(backend.claim(&worker, 100).await, "claim the rest");
    assert_eq!(rest.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids[5..]);
    counts_match_states(&mut conn, &ns, Work::QUEUE).await;
}

/// A claim stuck on a connection that breaks, which reaches the server only
/// after its worker stopped: released gracefully, or rescued as dead. It
/// takes nothing — before, its tasks stayed `running` for a worker that was
/// no longer registered, and no rescue would ever look at them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_lost_claim_that_runs_after_its_worker_stopped_takes_nothing() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.orphan_after(Duration::from_millis(300)));
    let (direct, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let ns = direct.namespace().to_owned();
    ok(direct.enqueue_bulk((0..20).map(|n| Work { n })).await, "enqueue");
    let mut conn = raw(&url).await;
    let mut stopped = Vec::new();
    for stop in ["release", "rescue"] {
        let proxy = HoldingProxy::start(through(&url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"))).0).await;
        let backend = proxied(&url, &proxy, &ns).await;
        let worker = registration(stop, Work::QUEUE, Work::NAME, false);
        ok(backend.heartbeat(&worker).await, "heartbeat");
        let first = ok(backend.claim(&worker, 2).await, "a claim that arrives");
        assert_eq!(first.tasks.len(), 2);
        proxy.hold.store(true, Ordering::SeqCst);
        let stuck = {
            let (backend, worker) = (backend.clone(), worker.clone());
            tokio::spawn(async move { backend.claim(&worker, 5).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.sever();
        assert!(stuck.await.unwrap_or_else(|e| panic!("{e}")).is_err(), "the stuck claim fails");
        if stop == "release" {
            assert_eq!(ok(backend.release(&worker).await, "release"), 2);
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(ok(direct.rescue_orphans().await, "rescue"), 2);
        }
        proxy.release();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let running = ok(direct.queue_counts(Work::QUEUE).await, "counts").running;
        assert_eq!(running, 0, "a claim that ran after the {stop} took tasks");
        let inflight: Vec<u64> = redis::cmd("SMEMBERS")
            .arg(key(&ns, Work::QUEUE, &format!("if:{stop}")))
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(inflight.is_empty(), "{inflight:?}");
        stopped.push((stop, backend, worker, proxy));
    }
    // A released worker that comes back claims as before; so does a rescued
    // one once it beats again.
    for (stop, backend, worker, _proxy) in &stopped {
        let refused = ok(backend.claim(worker, 1).await, "claim");
        assert_eq!(refused.tasks.len(), usize::from(*stop == "release"), "{stop}: before a heartbeat");
        ok(backend.heartbeat(worker).await, "heartbeat");
        assert_eq!(ok(backend.claim(worker, 1).await, "claim").tasks.len(), 1, "{stop}: after a heartbeat");
    }
    for (_, backend, worker, _) in &stopped {
        ok(backend.release(worker).await, "release");
    }
    counts_match_states(&mut conn, &ns, Work::QUEUE).await;
}

/// A claim that ran but whose reply was lost: the worker's next claim hands
/// out the same tasks again (still running for it), and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_claim_whose_reply_was_lost_is_redelivered() {
    let url = common::url();
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let ns = direct.namespace().to_owned();
    let proxy = HoldingProxy::start(through(&url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"))).0).await;
    let backend = proxied(&url, &proxy, &ns).await;
    let ids = ok(direct.enqueue_bulk((0..8).map(|n| Work { n })).await, "enqueue");
    let worker = registration("deaf", Work::QUEUE, Work::NAME, false);
    ok(backend.heartbeat(&worker).await, "heartbeat");

    proxy.drop_replies.store(true, Ordering::SeqCst);
    let lost = {
        let (backend, worker) = (backend.clone(), worker.clone());
        tokio::spawn(async move { backend.claim(&worker, 5).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ok(direct.queue_counts(Work::QUEUE).await, "counts").running < 5 {
        assert!(tokio::time::Instant::now() < deadline, "the claim never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.sever();
    assert!(lost.await.unwrap_or_else(|e| panic!("{e}")).is_err(), "the claim's reply was lost");

    let again = ok(backend.claim(&worker, 5).await, "the next claim");
    assert_eq!(
        again.tasks.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(),
        ids[..5].iter().map(|id| (*id, 1)).collect::<Vec<_>>()
    );
    let next = ok(backend.claim(&worker, 5).await, "another claim");
    assert_eq!(next.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids[5..], "nothing is handed out twice");
    let mut conn = raw(&url).await;
    counts_match_states(&mut conn, &ns, Work::QUEUE).await;
}

/// A claim whose reply was lost, then the queue paused: the paused queue
/// hands out nothing new, but the worker's next claim still gets the lost
/// claim's tasks (they are running for it already; left out, they would
/// stay `running` for a live worker that never heard of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_paused_queue_still_redelivers_a_lost_claim() {
    let url = common::url();
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let ns = direct.namespace().to_owned();
    let proxy = HoldingProxy::start(through(&url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"))).0).await;
    let backend = proxied(&url, &proxy, &ns).await;
    let ids = ok(direct.enqueue_bulk((0..8).map(|n| Work { n })).await, "enqueue");
    let worker = registration("deaf-paused", Work::QUEUE, Work::NAME, false);
    ok(backend.heartbeat(&worker).await, "heartbeat");

    proxy.drop_replies.store(true, Ordering::SeqCst);
    let lost = {
        let (backend, worker) = (backend.clone(), worker.clone());
        tokio::spawn(async move { backend.claim(&worker, 3).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ok(direct.queue_counts(Work::QUEUE).await, "counts").running < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the claim never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.sever();
    assert!(lost.await.unwrap_or_else(|e| panic!("{e}")).is_err(), "the claim's reply was lost");

    ok(direct.pause_queue(Work::QUEUE).await, "pause");
    let again = ok(backend.claim(&worker, 8).await, "the next claim, paused");
    assert_eq!(again.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids[..3], "only the lost claim's tasks");
    let empty = ok(backend.claim(&worker, 8).await, "another claim, paused");
    assert!(empty.tasks.is_empty() && empty.next_due.is_none(), "{empty:?}");
    ok(direct.resume_queue(Work::QUEUE).await, "resume");
    let rest = ok(backend.claim(&worker, 8).await, "a claim after resuming");
    assert_eq!(rest.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids[3..]);
    let mut conn = raw(&url).await;
    counts_match_states(&mut conn, &ns, Work::QUEUE).await;
}

/// A workflow step's output is stored once, in its run: the step task's
/// done state does not repeat it, and reading the task gives it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_step_output_is_stored_once() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut conn = raw(&url).await;
    let worker = registration("once", Diamond::QUEUE, Diamond::NAME, true);
    let run = ok(backend.start(Diamond(41)).await, "start");
    ok(backend.heartbeat(&worker).await, "heartbeat");
    let fetch = ok(backend.claim(&worker, 10).await, "claim").tasks;
    let output = b"42".to_vec();
    ok(
        backend.ack(&worker, &[Ack { id: fetch[0].id, outcome: Outcome::Done { result: output.clone() } }]).await,
        "ack",
    );
    let state = hget(&mut conn, &key(backend.namespace(), Diamond::QUEUE, "s"), seq(fetch[0].id)).await;
    assert_eq!(state.iter().filter(|b| **b == b'|').count(), 2, "no output in {:?}", String::from_utf8_lossy(&state));
    let task = info(&backend, fetch[0].id).await;
    assert_eq!((task.state, task.result), (TaskState::Done, Some(output.clone())));
    let status = ok(backend.workflow(run).status().await, "status");
    assert_eq!(status.steps[0].output.as_deref(), Some(&output[..]));
    assert_eq!(status.state, RunState::Running);
    let result: Option<u64> = ok(backend.result::<Work>(fetch[0].id).await, "result");
    assert_eq!(result, Some(42), "the typed result decodes from the run's copy");
}
