//! The capability tables of the README and of `docs/architecture.md` are
//! what the backend types implement: each row is compared with
//! `capabilities_of!` for that type, so a table can never claim (or hide) a
//! capability.

use std::collections::BTreeMap;

/// The rows of the capability table in `markdown`: backend → capabilities marked ✓.
fn table(markdown: &str, source: &str) -> BTreeMap<String, Vec<String>> {
    let mut lines = markdown.lines().skip_while(|l| !l.starts_with("| backend | transactional |"));
    let header: Vec<String> = match lines.next() {
        Some(line) => cells(line),
        None => panic!("{source} has no capability table (a line starting `| backend | transactional |`)"),
    };
    let mut rows = BTreeMap::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let row = cells(line);
        let backend = row[0].trim_matches('`').to_owned();
        let caps = header.iter().zip(&row).skip(1).filter(|(_, mark)| *mark == "✓").map(|(c, _)| c.clone()).collect();
        rows.insert(backend, caps);
    }
    rows
}

fn cells(line: &str) -> Vec<String> {
    line.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect()
}

fn implemented() -> BTreeMap<String, Vec<String>> {
    let mut all = BTreeMap::new();
    let mut add = |name: &str, caps: Vec<&str>| {
        all.insert(name.to_owned(), caps.into_iter().map(str::to_owned).collect::<Vec<_>>());
    };
    add("MemoryBackend", errand_runtime::capabilities_of!(errand::memory::MemoryBackend));
    #[cfg(feature = "sqlite")]
    add("SqliteBackend", errand_runtime::capabilities_of!(errand::sqlite::SqliteBackend));
    #[cfg(feature = "postgres")]
    add("PostgresBackend", errand_runtime::capabilities_of!(errand::postgres::PostgresBackend));
    #[cfg(feature = "redis")]
    add("RedisBackend", errand_runtime::capabilities_of!(errand::redis::RedisBackend));
    #[cfg(feature = "mysql")]
    add("MysqlBackend", errand_runtime::capabilities_of!(errand::mysql::MysqlBackend));
    all
}

fn check(markdown: &str, source: &str) {
    let documented = table(markdown, source);
    for (backend, caps) in implemented() {
        match documented.get(&backend) {
            Some(listed) => assert_eq!(listed, &caps, "{source}: the row of `{backend}` differs from its impls"),
            None => panic!("{source}: the capability table has no row for `{backend}`"),
        }
    }
}

#[test]
fn the_readme_table_matches_the_impls() {
    check(include_str!("../README.md"), "README.md");
}

#[test]
fn the_architecture_table_matches_the_impls() {
    check(include_str!("../docs/architecture.md"), "docs/architecture.md");
}
