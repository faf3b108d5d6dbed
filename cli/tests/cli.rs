//! The `errand` binary, run as a user runs it, against SQLite (a temporary
//! file) and against the PostgreSQL, Redis and MySQL servers of
//! `ERRAND_POSTGRES_URL`, `ERRAND_REDIS_URL` and `ERRAND_MYSQL_URL`, each in
//! a fresh namespace removed at the end. A server's tests are ignored when
//! its variable is unset (the build fails instead under
//! `ERRAND_REQUIRE_SERVICES=1`).

mod common;

use std::time::Duration;

use common::{Cli, core_flow, errand, errand_env, migrate_flow, unique};
use errand_mysql::MysqlBackend;
use errand_postgres::PostgresBackend;
use errand_redis::RedisBackend;
use errand_sqlite::SqliteBackend;

fn sqlite_cli(dir: &tempfile::TempDir) -> Cli {
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    Cli { url, namespace: None, migrations: true }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_end_to_end() {
    let dir = tempdir();
    let cli = sqlite_cli(&dir);
    let file = dir.path().join("jobs.db");
    // Checks and reads never create the file.
    let missing = cli.run(&["tasks", "ls"]).expect(3);
    assert!(
        missing.stderr.contains("does not exist") && missing.stderr.contains("errand migrate"),
        "{}",
        missing.stderr
    );
    assert!(!file.exists());
    migrate_flow(&cli);
    assert!(file.exists());
    let backend = SqliteBackend::connect(&cli.url).await.unwrap_or_else(|e| panic!("{e}"));
    core_flow(&cli, &backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_sqlite_file_says_to_migrate() {
    let dir = tempdir();
    let cli = sqlite_cli(&dir);
    std::fs::write(dir.path().join("jobs.db"), b"").unwrap_or_else(|e| panic!("{e}"));
    for args in [&["queues"][..], &["tasks", "show", "1"], &["runs", "ls"], &["workers"]] {
        let run = cli.run(args).expect(3);
        assert!(run.stderr.contains("the errand tables are missing: run `errand migrate`"), "{args:?}: {}", run.stderr);
    }
    let check = cli.run(&["migrate", "--check"]).expect(3);
    assert!(check.stdout.contains("pending"), "{}", check.stdout);
    cli.run(&["migrate"]).expect(0);
    cli.run(&["queues"]).expect(0);
}

#[test]
fn usage_errors_exit_2() {
    let none = errand(&["queues"]).expect(2);
    assert!(none.stderr.contains("--url") && none.stderr.contains("ERRAND_URL"), "{}", none.stderr);
    let bad = errand(&["--url", "ftp://user:secret@host/x", "queues"]).expect(2);
    assert!(bad.stderr.contains("not a URL errand knows") && !bad.stderr.contains("secret"), "{}", bad.stderr);
    let bare = errand(&["--url", "jobs.db", "queues"]).expect(2);
    assert!(bare.stderr.contains("sqlite://"), "{}", bare.stderr);
    errand(&["--url", "sqlite://x.db", "--namespace", "jobs", "queues"]).expect(2);
    errand(&["tasks", "retry"]).expect(2);
    errand(&["tasks", "ls", "--state", "gone"]).expect(2);
    errand(&["nonsense"]).expect(2);
    let bad_schema = errand(&["--url", "postgres://u@127.0.0.1:1/db", "--namespace", "Bad-Name", "queues"]).expect(2);
    assert!(bad_schema.stderr.contains("schema"), "{}", bad_schema.stderr);
    let bad_prefix = errand(&["--url", "mysql://u@127.0.0.1:1/db", "--namespace", "Bad-Prefix", "queues"]).expect(2);
    assert!(bad_prefix.stderr.contains("prefix"), "{}", bad_prefix.stderr);
}

#[test]
fn help_documents_the_exit_codes() {
    let help = errand(&["--help"]).expect(0);
    for part in ["Exit codes", "0  ok", "2  usage", "3  the schema is behind", "4  not found", "--json", "--url"] {
        assert!(help.stdout.contains(part), "no {part} in\n{}", help.stdout);
    }
    errand(&["--version"]).expect(0);
}

#[test]
fn the_url_comes_from_the_environment_too() {
    let dir = tempdir();
    let cli = sqlite_cli(&dir);
    cli.run(&["migrate"]).expect(0);
    let run = errand_env(&["--json", "queues"], &[("ERRAND_URL", &cli.url)]).expect(0);
    assert_eq!(run.json(), serde_json::json!([]));
}

#[test]
fn an_unreachable_server_says_so() {
    let run = errand(&["--url", "postgres://postgres@127.0.0.1:1/test", "queues"]).expect(1);
    assert!(run.stderr.contains("could not connect to `postgres://postgres@127.0.0.1:1/test`"), "{}", run.stderr);
    assert!(run.stderr.contains("is the server running? check --url"), "{}", run.stderr);
    let run = errand(&["--url", "mysql://root:pw@127.0.0.1:1/test", "migrate"]).expect(1);
    assert!(run.stderr.contains("could not connect") && !run.stderr.contains(":pw@"), "{}", run.stderr);
}

#[test]
fn bench_runs_the_harness_scenarios() {
    let run = errand(&["--json", "bench", "--backend", "memory", "--n", "300"]).expect(0).json();
    let results = run["results"].as_array().cloned().unwrap_or_default();
    let scenarios: Vec<&str> = results.iter().filter_map(|r| r["scenario"].as_str()).collect();
    assert_eq!(scenarios, ["enqueue bulk (300 per call)", "drain 300 @16", "drain 300 @64"], "{run}");
    assert!(results.iter().all(|r| r["value"].as_f64().is_some_and(|v| v > 0.0)), "{run}");
    let table = errand(&["bench", "--backend", "sqlite", "-n", "200"]).expect(0);
    assert!(table.stdout.starts_with("BACKEND") && table.stdout.contains("drain 200 @64"), "{}", table.stdout);
    let no_url = errand(&["bench", "--backend", "postgres"]).expect(2);
    assert!(no_url.stderr.contains("--url"), "{}", no_url.stderr);
    errand(&["--url", "redis://127.0.0.1:1", "bench", "--backend", "postgres"]).expect(2);
}

// ---- PostgreSQL ----------------------------------------------------------

/// Drops a test schema when dropped.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(20), move || async move {
            use errand_postgres::sqlx;
            if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&pool).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(errand_skip_postgres, ignore = "set ERRAND_POSTGRES_URL to run the PostgreSQL tests")]
async fn postgres_end_to_end() {
    let url = errand_runtime::testing::service_url("ERRAND_POSTGRES_URL");
    let schema = format!("errand_cli_{}", unique());
    let _guard = DropSchema { url: url.clone(), schema: schema.clone() };
    let cli = Cli { url: url.clone(), namespace: Some(schema.clone()), migrations: true };
    migrate_flow(&cli);
    let backend = PostgresBackend::builder().namespace(schema).connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    core_flow(&cli, &backend).await;
}

// ---- Redis ---------------------------------------------------------------

/// Deletes a test key prefix when dropped.
struct DeleteKeys {
    url: String,
    prefix: String,
}

impl Drop for DeleteKeys {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(20), move || async move {
            let _ = errand_benches::delete_redis_keys(&url, &prefix).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(errand_skip_redis, ignore = "set ERRAND_REDIS_URL to run the Redis tests")]
async fn redis_end_to_end() {
    let url = errand_runtime::testing::service_url("ERRAND_REDIS_URL");
    let prefix = format!("errand-cli-test:{}:", unique());
    let _guard = DeleteKeys { url: url.clone(), prefix: prefix.clone() };
    let cli = Cli { url: url.clone(), namespace: Some(prefix.clone()), migrations: false };
    migrate_flow(&cli);
    assert_eq!(cli.run(&["--json", "queues"]).expect(0).json(), serde_json::json!([]));
    let backend = RedisBackend::builder().namespace(prefix).connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    core_flow(&cli, &backend).await;
}

// ---- MySQL ---------------------------------------------------------------

/// Drops the tables of a test prefix when dropped.
struct DropTables {
    url: String,
    prefix: String,
}

impl Drop for DropTables {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(20), move || async move {
            use errand_mysql::sqlx;
            let Ok(pool) = sqlx::MySqlPool::connect(&url).await else { return };
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND LEFT(table_name, CHAR_LENGTH(?)) = ?",
            )
            .bind(&prefix)
            .bind(&prefix)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            if !names.is_empty() {
                let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {}", list.join(", "))).execute(&pool).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(errand_skip_mysql, ignore = "set ERRAND_MYSQL_URL to run the MySQL tests")]
async fn mysql_end_to_end() {
    let url = errand_runtime::testing::service_url("ERRAND_MYSQL_URL");
    let prefix = format!("ecli_{}_", unique());
    let _guard = DropTables { url: url.clone(), prefix: prefix.clone() };
    let cli = Cli { url: url.clone(), namespace: Some(prefix.clone()), migrations: true };
    migrate_flow(&cli);
    let backend = MysqlBackend::builder().namespace(prefix).connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    core_flow(&cli, &backend).await;
}

// ---- the board -----------------------------------------------------------

/// Kills the board's process when dropped.
#[cfg(feature = "board")]
struct Child(std::process::Child);

#[cfg(feature = "board")]
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(feature = "board")]
#[tokio::test(flavor = "multi_thread")]
async fn the_board_serves_the_store() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    let dir = tempdir();
    let cli = sqlite_cli(&dir);
    cli.run(&["migrate"]).expect(0);
    let backend = SqliteBackend::connect(&cli.url).await.unwrap_or_else(|e| panic!("{e}"));
    let note = common::Note { to: "ada@example.com".into(), tags: Vec::new() };
    errand_runtime::TaskSink::enqueue(&backend, note).await.unwrap_or_else(|e| panic!("{e}"));

    // A reachable address without a token is refused before binding.
    let refused = cli.run(&["board", "--bind", "0.0.0.0:0"]).expect(2);
    assert!(refused.stderr.contains("token"), "{}", refused.stderr);
    cli.run(&["board", "--bind", "nowhere"]).expect(2);

    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_errand"))
            .args(["--url", &cli.url, "board", "--bind", "127.0.0.1:0"])
            .env_remove("ERRAND_BOARD_TOKEN")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start errand board: {e}")),
    );
    let stderr = child.0.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap_or_else(|e| panic!("{e}"));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap_or_else(|e| panic!("{e}"));
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap_or_else(|e| panic!("{e}"));
        page
    };
    let page = get("/");
    let head: String = page.chars().take(600).collect();
    assert!(page.starts_with("HTTP/1.1 200"), "{head}");
    assert!(page.contains("cli_notes"), "the overview lists the queue");
}

#[cfg(not(feature = "board"))]
#[test]
fn without_the_board_feature_the_board_says_so() {
    let dir = tempdir();
    let cli = sqlite_cli(&dir);
    cli.run(&["migrate"]).expect(0);
    let run = cli.run(&["board"]).expect(2);
    assert!(run.stderr.contains("the board is not built into this binary"), "{}", run.stderr);
}
