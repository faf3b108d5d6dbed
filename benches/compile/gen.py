#!/usr/bin/env python3
"""Generator for errand's compile-time benchmark (see README.md here).

Two sub-commands, both driven by run.sh:

  gen.py crates OUT ERRAND_DIR [--jobs N] [--workflows W]
      writes OUT/bench_types (the user's own data types, shared by every
      crate so their serde derives are compiled once, as a dependency) and
      OUT/macro_crate (N `#[errand::job]` fns and W `#[errand::workflow]`
      modules of 10 `#[dag_step]`s each), both depending on errand by path.

  gen.py expanded EXPANSION OUT MODE
      turns rustc's `-Zunpretty=expanded` output of macro_crate into the
      crate OUT (same manifest as macro_crate) that builds on stable. MODE:
        errand  errand's macros stay expanded; the impls written by serde's
                derive are removed again and `#[derive(Deserialize)]` put
                back, i.e. what a hand-written equivalent would contain;
        all     serde's derive output stays expanded too (`cargo expand`).
      In both, built-in derives (Debug, Clone, ...) are put back as
      `#[derive]` (their expansion uses unstable internals), and the
      expansion of `vec!`/`format!` is rewritten with stable calls.

The edit point: job number EDIT_JOB has `let label: &str = "__EDIT_ME__:0";`
in its body; run.sh rewrites the number to make a one-job edit.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EDIT_JOB = 42
EDIT_MARK = "__EDIT_ME__:0"

# --------------------------------------------------------------------------
# generation of the macro crate
# --------------------------------------------------------------------------

BENCH_TYPES = """\
//! The application's own data types, in a crate of their own so that the
//! measured crates differ only by errand's macros.
#![allow(missing_docs)]

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub items: Vec<u32>,
    pub total_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Channel {
    Email,
    Sms(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageId(pub String);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub user: u64,
    pub lines: Vec<String>,
}

/// Injected as `Data<Mailer>`.
pub struct Mailer {
    pub from: &'static str,
}

/// Injected as `Data<Db>`.
pub struct Db {
    pub url: String,
}

/// Injected as `Data<Cache>`.
pub struct Cache;
"""


def cargo_toml(name: str, deps: str) -> str:
    return f"""\
[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

# Not part of any enclosing workspace.
[workspace]

[dependencies]
{deps}"""


def errand_dep(errand_dir: str) -> str:
    return f'errand = {{ path = "{errand_dir}", default-features = false, features = ["sqlite", "macros"] }}\n'


# Ten kinds of job, cycled over. Each: (attribute args, params, return type, body).
# `{n}` is the job number, `{edit}` the edit-point statement (empty except in
# job EDIT_JOB).
JOB_KINDS = [
    (
        'queue = "emails", retries = 5, timeout = "10s"',
        "to: String, subject: String, mailer: Data<Mailer>",
        "Result<String, JobError>",
        'Ok(format!("{{}}:{{}}:{{}}:{n}", mailer.from, to, subject))',
    ),
    (
        'queue = "uploads", retries = 3, backoff = "fixed(300ms)"',
        "id: u64, cx: TaskCx",
        "Result<u64, JobError>",
        'if cx.attempt() == 1 {{ return Err(JobError::retry("connection reset")); }}\n    Ok(id * {n})',
    ),
    (
        'queue = "users"',
        "user: User, db: Data<Db>",
        "Result<(), JobError>",
        "let _ = (user.id + {n}, db.url.len());\n    Ok(())",
    ),
    (
        'priority = -2, unique = "order:{{id}}", unique_for = "1h"',
        "id: u64, order: Order, note: Option<String>",
        "Result<i64, JobError>",
        "Ok(order.total_cents + id as i64 + note.map_or(0, |n| n.len() as i64) + {n})",
    ),
    (
        "",
        "ids: Vec<u64>, channel: Channel",
        "",
        "let _ = (ids.len() + {n}, channel);",
    ),
    (
        'queue = "cache", backoff = "exponential(100ms, max = 1m)", timeout = "30s"',
        "name: String, cx: TaskCx, cache: Data<Cache>",
        "Result<usize, JobError>",
        "let _ = (cx.attempt(), &*cache);\n    Ok(name.len() + {n})",
    ),
    (
        'name = "bench.job_{n:03}", retries = 0',
        "a: i32, b: f64, flag: bool",
        "Result<f64, JobError>",
        "Ok(if flag {{ f64::from(a) * b }} else {{ b + {n}.0 }})",
    ),
    (
        'queue = "reports", unique = "args"',
        "user: User, lines: Vec<String>, worker: WorkerCx",
        "Result<Report, JobError>",
        "let _ = worker.id();\n    Ok(Report {{ user: user.id + {n}, lines }})",
    ),
    (
        "retries = 10",
        "counts: std::collections::HashMap<String, u32>, mailer: Data<Mailer>, db: Data<Db>",
        "Result<u32, JobError>",
        "let _ = (mailer.from, db.url.len());\n    Ok(counts.values().sum::<u32>() + {n})",
    ),
    (
        'queue = "misc", timeout = "1m30s"',
        "key: String, value: Option<Vec<u8>>, ttl_secs: u32",
        "Result<MessageId, JobError>",
        'Ok(MessageId(format!("{{key}}:{{}}:{{ttl_secs}}:{n}", value.map_or(0, |v| v.len()))))',
    ),
]


def job_fn(n: int) -> str:
    attrs, params, ret, body = JOB_KINDS[n % len(JOB_KINDS)]
    attrs = attrs.format(n=n)
    body = body.format(n=n)
    edit = f'let label: &str = "{EDIT_MARK}";\n    let _ = label.len();\n    ' if n == EDIT_JOB else ""
    vis = "pub " if n % 3 != 2 else "pub(crate) "
    attr = f"#[errand::job({attrs})]" if attrs else "#[errand::job]"
    arrow = f" -> {ret}" if ret else ""
    return f"""\
/// Job number {n}.
{attr}
{vis}async fn job_{n:03}({params}){arrow} {{
    {edit}{body}
}}
"""


# The shape of every workflow: step index -> `after` list (in binding order).
# 0 is the entry; 1 and 2 fan out of it; 3 joins them; 4..9 a chain with a
# second fan-out (5, 6) and fan-in (7).
DAG = {0: [], 1: [0], 2: [0], 3: [1, 2], 4: [3], 5: [4], 6: [4], 7: [5, 6], 8: [7], 9: [8]}

# Output type of each step (its inputs follow from DAG).
STEP_OUT = ["User", "MessageId", "u64", "Report", "Order", "String", "Vec<u8>", "u64", "Report", "MessageId"]

# How to build a value of each type from the step's inputs (bound as a0, a1).
MAKE = {
    "User": "User {{ id: {x}, email: String::from(\"u\") }}",
    "MessageId": "MessageId(format!(\"m{{}}\", {x}))",
    "u64": "{x}",
    "Report": "Report {{ user: {x}, lines: Vec::new() }}",
    "Order": "Order {{ id: {x}, items: vec![1, 2], total_cents: ({x}) as i64 }}",
    "String": "({x}).to_string()",
    "Vec<u8>": "vec![({x}) as u8]",
}

# A u64 drawn from a value of each type.
NUM = {
    "User": "{v}.id",
    "MessageId": "({v}.0.len() as u64)",
    "u64": "{v}",
    "Report": "{v}.user",
    "Order": "{v}.id",
    "String": "({v}.len() as u64)",
    "Vec<u8>": "({v}.len() as u64)",
}

WF_INPUT = ["u64", "User", "String", "Order", "u64", "User", "String", "Order", "u64", "User"]


def workflow_mod(w: int) -> str:
    input_ty = WF_INPUT[w % len(WF_INPUT)]
    attr = f'#[errand::workflow(queue = "flow_{w:02}")]' if w % 2 == 0 else "#[errand::workflow]"
    steps = []
    for s in range(10):
        after = DAG[s]
        in_tys = [input_ty] if not after else [STEP_OUT[a] for a in after]
        params = [f"a{i}: {t}" for i, t in enumerate(in_tys)]
        injected = []
        if s == 1:
            params.append("mailer: Data<Mailer>")
            injected.append("mailer.from.len() as u64")
        if s == 4:
            params.append("cx: TaskCx")
            injected.append("u64::from(cx.attempt())")
        if s == 6 and w % 2 == 1:
            params.append("db: Data<Db>")
            injected.append("db.url.len() as u64")
        nums = [NUM[t].format(v=f"a{i}") for i, t in enumerate(in_tys)] + injected + [str(w * 10 + s)]
        x = " + ".join(nums)
        value = MAKE[STEP_OUT[s]].format(x=x)
        opts = []
        if after:
            names = [f"step_{a}" for a in after]
            opts.append("after = " + (names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"))
        if s == 2:
            opts.append("retries = 10")
        if s == 5:
            opts.append('backoff = "fixed(200ms)"')
        if s == 8:
            opts.append('timeout = "5m"')
        step_attr = "#[dag_step(" + ", ".join(opts) + ")]" if opts else "#[dag_step]"
        steps.append(
            f"""\
    {step_attr}
    async fn step_{s}({", ".join(params)}) -> Result<{STEP_OUT[s]}, JobError> {{
        Ok({value})
    }}
"""
        )
    body = "\n".join(steps)
    return f"""\
/// Workflow number {w}.
{attr}
pub mod flow_{w:02} {{
    use super::*;

{body}}}
"""


def gen_crates(out: Path, errand_dir: str, jobs: int, workflows: int) -> None:
    types = out / "bench_types"
    (types / "src").mkdir(parents=True, exist_ok=True)
    (types / "Cargo.toml").write_text(
        cargo_toml("bench_types", 'serde = { version = "1", features = ["derive"] }\n')
    )
    (types / "src" / "lib.rs").write_text(BENCH_TYPES)

    mc = out / "macro_crate"
    (mc / "src").mkdir(parents=True, exist_ok=True)
    deps = errand_dep(errand_dir) + 'bench_types = { path = "../bench_types" }\n'
    (mc / "Cargo.toml").write_text(cargo_toml("macro_crate", deps))
    parts = [
        f"""\
//! Generated by errand's benches/compile/gen.py: {jobs} `#[errand::job]` fns
//! and {workflows} `#[errand::workflow]` modules of 10 `#[dag_step]`s.
#![allow(dead_code, unused_variables, unused_imports)]

use bench_types::*;
use errand::prelude::*;
"""
    ]
    parts += [job_fn(n) for n in range(jobs)]
    parts += [workflow_mod(w) for w in range(workflows)]
    (mc / "src" / "lib.rs").write_text("\n".join(parts))


# --------------------------------------------------------------------------
# post-processing of the expansion
# --------------------------------------------------------------------------


def scan_item_end(src: str, start: int) -> int:
    """Index just past the item starting at `start` (outer attributes
    included): after its matching `}` (and a `;` right after it, as for
    `const _: () = { ... };`) or its first top-level `;`. Skips string, raw
    string, byte string and char literals and comments; tells lifetimes from
    char literals."""
    depth = 0
    i = start
    n = len(src)
    while i < n:
        c = src[i]
        if c == "/" and src.startswith("//", i):
            i = src.index("\n", i)
            continue
        if c == "/" and src.startswith("/*", i):
            i = src.index("*/", i) + 2
            continue
        if c == "r" and re.match(r'r#*"', src[i:i + 260]) and not (src[i - 1].isalnum() or src[i - 1] == "_"):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            end = src.index('"' + hashes, i + 2 + len(hashes))
            i = end + 1 + len(hashes)
            continue
        if c == '"':
            i += 1
            while src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", src[i:])
            if m:
                i += m.end()
                continue
            i += 1  # a lifetime
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0 and c == "}":
                j = i + 1
                while j < n and src[j] in " \t":
                    j += 1
                return j + 1 if j < n and src[j] == ";" else i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    raise ValueError(f"unterminated item at offset {start}")


# `#[doc(hidden)] #[allow(...)] const _: () = { ... };`: how serde's derive
# output (and errand's own written-out `Serialize`) is printed.
CONST_BLOCK = re.compile(
    r"(?m)^[ \t]*#\[doc\(hidden\)\]\s*\n(?:[ \t]*#\[allow\([^\]]*\)\]\s*\n)*[ \t]*const _: \(\) =\s*\{"
)
# A built-in derive's output: `#[automatically_derived] impl ... Trait for Type {`.
AUTO_IMPL = re.compile(
    r"(?m)^[ \t]*#\[automatically_derived\]\s*\n(?:[ \t]*#\[[^\n]*\]\s*\n)*[ \t]*impl\b(?P<head>[^{;]*)\{"
)
# Built-in derives print code using unstable internals
# (`Formatter::debug_struct_field2_finish`, `AssertParamIsClone`,
# `StructuralPartialEq`, ...): they are always put back as `#[derive]`.
# value None: part of another derive's output, dropped without a derive.
BUILTIN_TRAITS = {
    "::core::fmt::Debug": "::core::fmt::Debug",
    "::core::clone::Clone": "::core::clone::Clone",
    "::core::marker::Copy": "::core::marker::Copy",
    "::core::default::Default": "::core::default::Default",
    "::core::hash::Hash": "::core::hash::Hash",
    "::core::cmp::PartialEq": "::core::cmp::PartialEq",
    "::core::cmp::Eq": "::core::cmp::Eq",
    "::core::cmp::PartialOrd": "::core::cmp::PartialOrd",
    "::core::cmp::Ord": "::core::cmp::Ord",
    "::core::marker::StructuralPartialEq": None,
}
SERDE_DERIVE_IMPL = re.compile(
    r"impl\s*(?:<'de>)?\s*_serde::(?P<trait>Deserialize|Serialize)(?:<'de>)?\s+for\s+(?P<ty>[A-Za-z_][A-Za-z0-9_]*)"
)
SERDE_ALIAS = re.compile(r"(?:use\s+(?P<path>[:A-Za-z0-9_]+)\s+as\s+_serde;|extern crate (?P<krate>\w+) as _serde;)")


def impl_target(head: str) -> str:
    """`<'de> _serde::Deserialize<'de> for SendEmail ` -> `SendEmail`."""
    m = re.search(r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)", head)
    if not m:
        raise ValueError(f"no type in impl head {head!r}")
    return m.group(1)


def rederive(src: str, serde_too: bool) -> tuple[str, dict[str, list[str]]]:
    """Removes derive-written impls (built-in ones always, serde's if
    `serde_too`) and returns (source, {type: [derive paths]})."""
    derives: dict[str, list[str]] = {}
    out = []
    pos = 0
    while True:
        cands = [m for m in (CONST_BLOCK.search(src, pos), AUTO_IMPL.search(src, pos)) if m]
        if not cands:
            break
        m = min(cands, key=lambda m: m.start())
        end = scan_item_end(src, m.start())
        block = src[m.start():end]
        drop = False
        if m.re is CONST_BLOCK:
            # serde's: `use <serde path> as _serde;` (or `extern crate serde
            # as _serde;`), then one impl. errand's own written-out
            # `Serialize` also sits in a `const _` but has no `_serde`.
            alias, imp = SERDE_ALIAS.search(block), SERDE_DERIVE_IMPL.search(block)
            if serde_too and alias and imp:
                path = alias.group("path") or "::" + alias.group("krate")
                derives.setdefault(imp.group("ty"), []).append(f"{path}::{imp.group('trait')}")
                drop = True
        else:
            head = m.group("head")
            trait = next((t for t in BUILTIN_TRAITS if re.search(re.escape(t) + r"(?![:\w])", head)), None)
            if trait is not None:
                if BUILTIN_TRAITS[trait]:
                    derives.setdefault(impl_target(head), []).append(BUILTIN_TRAITS[trait])
                drop = True
        if not drop:
            # Keep it whole (and what is inside it, e.g. serde's own
            # `#[automatically_derived]` visitor impls).
            out.append(src[pos:end])
            pos = end
            continue
        out.append(src[pos:m.start()])
        pos = end
        if src.startswith("\n", pos):
            pos += 1
    out.append(src[pos:])
    return "".join(out), derives


def put_derives(src: str, derives: dict[str, list[str]]) -> str:
    """Puts `#[derive(...)]` back on each type, before a `#[serde(...)]`
    helper attribute right above it (a helper must follow its derive)."""
    for ty, traits in derives.items():
        order = sorted(set(traits), key=lambda t: ("serde" in t, t))
        pat = re.compile(
            r"(?m)^(?P<serde>[ \t]*#\[serde\([^\n]*\)\]\s*\n)?(?P<ind>[ \t]*)(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum)\s+"
            + re.escape(ty)
            + r"\b"
        )
        matches = list(pat.finditer(src))
        if len(matches) != 1:
            raise ValueError(f"{len(matches)} definitions of {ty} found to put #[derive] back on (want 1)")
        m = matches[0]
        attr = f"{m.group('ind')}#[derive({', '.join(order)})]\n"
        src = src[:m.start()] + attr + src[m.start():]
    return src


SHIMS = """
/// Stable stand-ins for the unstable std internals that `format!` and
/// `vec!` expand to (`::alloc::__export::must_use`, `box_new`...); added by
/// benches/compile/gen.py.
#[doc(hidden)]
#[allow(dead_code)]
mod __expanded_shims {
    #[inline(always)]
    pub(crate) fn must_use<T>(t: T) -> T {
        t
    }
    #[inline(always)]
    pub(crate) fn boxed<T>(t: T) -> ::std::boxed::Box<T> {
        ::std::boxed::Box::new(t)
    }
    #[inline(always)]
    pub(crate) fn into_vec<T, const N: usize>(b: ::std::boxed::Box<[T; N]>) -> ::std::vec::Vec<T> {
        let b: ::std::boxed::Box<[T]> = b;
        b.into_vec()
    }
}
"""


def stabilize(src: str) -> tuple[str, list[str]]:
    """What the pretty-printed expansion has that stable rustc refuses."""
    notes = []

    def sub(pattern: str, repl: str, note: str, flags: int = re.M) -> None:
        nonlocal src
        src, k = re.subn(pattern, repl, src, flags=flags)
        if k:
            notes.append(note.format(k=k))

    sub(r"^[ \t]*#!\[feature\([^\]]*\)\]\s*\n", "", "removed {k} `#![feature(...)]` (prelude_import)")
    sub(
        r"^[ \t]*#\[prelude_import\]\s*\n[ \t]*use (?:::)?std::prelude::rust_\d+::\*;\s*\n",
        "",
        "removed `#[prelude_import] use std::prelude::rust_20xx::*;` (the implicit prelude)",
    )
    sub(r"^[ \t]*(?:#\[macro_use\]\s*)?extern crate std;\s*\n", "", "removed `extern crate std;` (implicit)")
    sub(r"#\[rustc_[a-z_]+(?:\([^\]]*\))?\]\s*", "", "removed {k} `#[rustc_*]` attribute(s)")
    # vec![a, b] -> box_assume_init_into_vec_unsafe(write_box_via_move(Box::new_uninit(), [a, b]))
    sub(
        r"::alloc::boxed::box_assume_init_into_vec_unsafe\(\s*::alloc::intrinsics::write_box_via_move\(\s*"
        r"::alloc::boxed::Box::new_uninit\(\),",
        "crate::__expanded_shims::into_vec(crate::__expanded_shims::boxed(",
        "replaced {k} expanded `vec![..]` (unstable box intrinsics) by `Box<[T; N]>::into_vec`",
    )
    sub(
        r"::alloc::boxed::box_new\(",
        "crate::__expanded_shims::boxed(",
        "replaced {k} `::alloc::boxed::box_new` (unstable) by `Box::new`",
    )
    sub(
        r"::alloc::__export::must_use\(",
        "crate::__expanded_shims::must_use(",
        "replaced {k} `::alloc::__export::must_use` (from `format!`, unstable) by an identity fn",
    )
    sub(r"(?<![\w:])::alloc::", "::std::", "rewrote {k} other `::alloc::` paths as `::std::`")
    if "crate::__expanded_shims::" in src:
        src += SHIMS
    return src, notes


def gen_expanded(expansion: Path, out: Path, mode: str) -> None:
    src = expansion.read_text()
    src, notes = stabilize(src)
    src, derives = rederive(src, serde_too=(mode == "errand"))
    src = put_derives(src, derives)
    n_serde = sum(1 for v in derives.values() for t in v if "serde" in t)
    n_builtin = sum(1 for v in derives.values() for t in v if "serde" not in t)
    notes.append(f"put {n_builtin} built-in derive impls back as `#[derive(Debug, Clone, ...)]`")
    if mode == "errand":
        notes.append(f"put {n_serde} serde derive impls back as `#[derive(serde::Deserialize)]`")
    else:
        # serde's inert helper attribute has no derive left to own it.
        src, k = re.subn(r"(?m)^[ \t]*#\[serde\([^\n]*\)\]\s*\n", "", src)
        if k:
            notes.append(f"removed {k} inert `#[serde(...)]` helper attributes (their derive is expanded)")
        # serde writes `use ... as _serde; ;` (an empty statement, not
        # linted inside a derive's output, `redundant_semicolons` outside).
        src, k = re.subn(r"(?m)(as _serde;[ \t]*\n)[ \t]*;[ \t]*\n", r"\1", src)
        if k:
            notes.append(f"removed {k} stray `;` after serde's `use ... as _serde;` (would warn)")
    if src.count(EDIT_MARK) != 1:
        raise ValueError(f"edit mark {EDIT_MARK!r} found {src.count(EDIT_MARK)} times in the expansion (want 1)")
    (out / "src").mkdir(parents=True, exist_ok=True)
    (out / "src" / "lib.rs").write_text(src)
    # Same manifest as macro_crate (same dependencies and features), renamed.
    manifest = (out.parent / "macro_crate" / "Cargo.toml").read_text()
    (out / "Cargo.toml").write_text(manifest.replace('name = "macro_crate"', f'name = "{out.name}"', 1))
    for note in notes:
        print(f"  [{mode}] {note}")


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "crates":
        out, errand_dir = Path(argv[1]), argv[2]
        opts = dict(zip(argv[3::2], argv[4::2]))
        jobs = int(opts.get("--jobs", 100))
        workflows = int(opts.get("--workflows", 10))
        if jobs <= EDIT_JOB:
            print(f"gen.py: need more than {EDIT_JOB} jobs", file=sys.stderr)
            return 2
        gen_crates(out, errand_dir, jobs, workflows)
        return 0
    if len(argv) == 4 and argv[0] == "expanded" and argv[3] in ("all", "errand"):
        gen_expanded(Path(argv[1]), Path(argv[2]), argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
