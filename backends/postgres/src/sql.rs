//! The SQL this backend runs, kept as files in `sql/` and `migrations/`, with
//! `__SCHEMA__` replaced by the backend's validated, quoted schema name.

/// The placeholder for the schema in every SQL file.
const SCHEMA: &str = "__SCHEMA__";

pub(crate) use errand_runtime::stored::Migration;

/// Every migration, in version order. Append only: an applied migration must
/// never change (its checksum is verified on every `setup`).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "create tasks and workers",
        sql: include_str!("../migrations/0001_create_tasks.sql"),
    },
    Migration { version: 2, description: "workflows", sql: include_str!("../migrations/0002_workflows.sql") },
    Migration {
        version: 3,
        description: "index finished tasks only",
        sql: include_str!("../migrations/0003_finished_index.sql"),
    },
    Migration { version: 4, description: "claim tokens", sql: include_str!("../migrations/0004_claim_token.sql") },
];

/// Every statement, rendered for one schema.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) migrations_table: String,
    pub(crate) push: String,
    pub(crate) push_one: String,
    pub(crate) push_unique: String,
    pub(crate) announce: String,
    pub(crate) vacuum: String,
    pub(crate) reserve_ids: String,
    pub(crate) copy_tasks: String,
    pub(crate) lock_keys: String,
    pub(crate) claim: String,
    pub(crate) ack: String,
    pub(crate) mark_dead: String,
    pub(crate) heartbeat: String,
    pub(crate) rescue: String,
    pub(crate) release: String,
    pub(crate) release_claims: String,
    pub(crate) cancelled_tasks: String,
    pub(crate) unserved: String,
    pub(crate) bury_unserved: String,
    pub(crate) cleanup: String,
    pub(crate) counts: String,
    /// `SELECT <every column> FROM tasks`, completed with a `WHERE` clause.
    pub(crate) select_task: String,
    pub(crate) task_by_id: String,
    pub(crate) workers: String,
    pub(crate) retry_task: String,
    pub(crate) cancel_task: String,
    pub(crate) run_insert: String,
    pub(crate) run_lock: String,
    pub(crate) run_outputs: String,
    pub(crate) run_finish: String,
    pub(crate) run_fail: String,
    pub(crate) run_select: String,
    pub(crate) run_steps: String,
    pub(crate) step_ack: String,
    pub(crate) step_tasks_insert: String,
    /// The schema, quoted, for the few statements built at run time.
    pub(crate) schema: String,
}

impl Queries {
    /// `schema` must already be a validated identifier.
    pub(crate) fn new(schema: &str) -> Self {
        let quoted = format!("\"{schema}\"");
        let render = |sql: &str| sql.replace(SCHEMA, &quoted);
        let select_task = render(include_str!("../sql/select_task.sql"));
        Self {
            migrations_table: render(include_str!("../sql/migrations_table.sql")),
            push: render(include_str!("../sql/push.sql")),
            push_one: render(include_str!("../sql/push_one.sql")),
            push_unique: render(include_str!("../sql/push_unique.sql")),
            announce: render(include_str!("../sql/announce.sql")),
            vacuum: render(include_str!("../sql/vacuum.sql")),
            reserve_ids: render(include_str!("../sql/reserve_ids.sql")),
            copy_tasks: render(include_str!("../sql/copy_tasks.sql")),
            lock_keys: render(include_str!("../sql/lock_keys.sql")),
            claim: render(include_str!("../sql/claim.sql")),
            ack: render(include_str!("../sql/ack.sql")),
            mark_dead: render(include_str!("../sql/mark_dead.sql")),
            heartbeat: render(include_str!("../sql/heartbeat.sql")),
            rescue: render(include_str!("../sql/rescue.sql")),
            release: render(include_str!("../sql/release.sql")),
            release_claims: render(include_str!("../sql/release_claims.sql")),
            cancelled_tasks: render(include_str!("../sql/cancelled_tasks.sql")),
            unserved: render(include_str!("../sql/unserved.sql")),
            bury_unserved: render(include_str!("../sql/bury_unserved.sql")),
            cleanup: render(include_str!("../sql/cleanup.sql")),
            counts: render(include_str!("../sql/counts.sql")),
            task_by_id: format!("{select_task}WHERE id = $1"),
            select_task,
            workers: render(include_str!("../sql/workers.sql")),
            retry_task: render(include_str!("../sql/retry_task.sql")),
            cancel_task: render(include_str!("../sql/cancel_task.sql")),
            run_insert: render(include_str!("../sql/run_insert.sql")),
            run_lock: render(include_str!("../sql/run_lock.sql")),
            run_outputs: render(include_str!("../sql/run_outputs.sql")),
            run_finish: render(include_str!("../sql/run_finish.sql")),
            run_fail: render(include_str!("../sql/run_fail.sql")),
            run_select: render(include_str!("../sql/run_select.sql")),
            run_steps: render(include_str!("../sql/run_steps.sql")),
            step_ack: render(include_str!("../sql/step_ack.sql")),
            step_tasks_insert: render(include_str!("../sql/step_tasks_insert.sql")),
            schema: quoted,
        }
    }

    /// A migration's SQL for this schema.
    pub(crate) fn migration(&self, migration: &Migration) -> String {
        migration.sql.replace(SCHEMA, &self.schema)
    }
}

/// FNV-1a, 64 bits: stable fingerprints (migration checksums, advisory lock
/// ids). Not a security measure.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
