//! A workflow run's graph as inline SVG: steps layered by dependency depth,
//! left to right, coloured by state.

use std::fmt::Write as _;

use errand_runtime::workflow::StepInfo;

use crate::html::{Esc, Links, state_class};

const NODE_W: f64 = 180.0;
const NODE_H: f64 = 52.0;
const GAP_X: f64 = 70.0;
const GAP_Y: f64 = 22.0;
const PAD: f64 = 16.0;

/// Each step's column (its dependency depth) and row, for steps whose
/// dependencies are given as indices. A dependency that is out of range or
/// part of a cycle counts as none, so any input lays out.
pub(crate) fn layout(deps: &[Vec<usize>]) -> Vec<(usize, usize)> {
    let n = deps.len();
    let mut depth: Vec<Option<usize>> = vec![None; n];
    // Longest path from an entry step; at most n rounds settle it in a DAG.
    for _ in 0..=n {
        let mut changed = false;
        for i in 0..n {
            let d = deps[i]
                .iter()
                .filter(|&&j| j < n && j != i)
                .map(|&j| depth[j].map_or(0, |d| d + 1))
                .max()
                .unwrap_or(0)
                .min(n);
            if depth[i] != Some(d) {
                depth[i] = Some(d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let depth: Vec<usize> = depth.into_iter().map(Option::unwrap_or_default).collect();
    let columns = depth.iter().max().map_or(0, |d| d + 1);
    let mut rows = vec![0usize; n];
    for column in 0..columns {
        let mut members: Vec<usize> = (0..n).filter(|&i| depth[i] == column).collect();
        // Order by the mean row of the steps they follow, to keep edges short.
        let key = |i: usize| {
            let parents: Vec<usize> = deps[i].iter().copied().filter(|&j| j < n && depth[j] < column).collect();
            if parents.is_empty() {
                i as f64
            } else {
                parents.iter().map(|&j| rows[j] as f64).sum::<f64>() / parents.len() as f64
            }
        };
        members.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        for (row, &i) in members.iter().enumerate() {
            rows[i] = row;
        }
    }
    (0..n).map(|i| (depth[i], rows[i])).collect()
}

fn clip(name: &str, max: usize) -> String {
    if name.chars().count() > max {
        let mut cut: String = name.chars().take(max - 1).collect();
        cut.push('…');
        cut
    } else {
        name.to_owned()
    }
}

/// The run's graph as an `<svg>`: one `<g class="node">` per step, with a
/// link to its task once it has one, and an arrow per dependency.
pub(crate) fn svg(steps: &[StepInfo], links: &Links) -> String {
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| s.after.iter().filter_map(|name| steps.iter().position(|o| &o.name == name)).collect())
        .collect();
    let places = layout(&deps);
    let columns = places.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    let mut per_column = vec![0usize; columns];
    for (c, _) in &places {
        per_column[*c] += 1;
    }
    let tallest = per_column.iter().copied().max().unwrap_or(0);
    let width = PAD * 2.0 + columns as f64 * NODE_W + columns.saturating_sub(1) as f64 * GAP_X;
    let height = PAD * 2.0 + tallest as f64 * NODE_H + tallest.saturating_sub(1) as f64 * GAP_Y;
    let pos = |i: usize| {
        let (c, r) = places[i];
        let column_h = per_column[c] as f64 * (NODE_H + GAP_Y) - GAP_Y;
        let x = PAD + c as f64 * (NODE_W + GAP_X);
        let y = PAD + (height - 2.0 * PAD - column_h) / 2.0 + r as f64 * (NODE_H + GAP_Y);
        (x, y)
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="dag" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" role="img" aria-label="The run's steps and their dependencies"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>"#
    );
    for (i, ds) in deps.iter().enumerate() {
        let (x2, y2) = pos(i);
        for &j in ds {
            if j == i {
                continue;
            }
            let (x1, y1) = pos(j);
            let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2.0, x2 - 2.0, y2 + NODE_H / 2.0);
            let mid = (sx + ex) / 2.0;
            let live = if steps[j].state == Some(errand_runtime::TaskState::Done) { " done" } else { "" };
            let _ = write!(
                out,
                r#"<path class="edge{live}" d="M{sx:.1},{sy:.1} C{mid:.1},{sy:.1} {mid:.1},{ey:.1} {ex:.1},{ey:.1}" marker-end="url(#arrow)"/>"#
            );
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let (x, y) = pos(i);
        let (class, label) = match step.state {
            Some(state) => (state_class(state), state.as_str()),
            None => ("s-waiting", "waiting"),
        };
        let attempt = if step.attempt > 1 { format!(" · attempt {}", step.attempt) } else { String::new() };
        if let Some(task) = step.task {
            let _ = write!(out, r#"<a href="{}">"#, Esc(&links.to(&format!("/tasks/{task}"))));
        }
        let _ = write!(
            out,
            r#"<g class="node {class}" data-step="{name}"><title>{name}: {label}{attempt}</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="8"/><circle cx="{cx:.1}" cy="{cy:.1}" r="5" class="dot"/><text class="name" x="{tx:.1}" y="{ny:.1}">{short}</text><text class="state" x="{tx:.1}" y="{sy:.1}">{label}{attempt}</text></g>"#,
            name = Esc(&step.name),
            short = Esc(&clip(&step.name, 22)),
            cx = x + 16.0,
            cy = y + 19.0,
            tx = x + 28.0,
            ny = y + 23.0,
            sy = y + 40.0,
        );
        if step.task.is_some() {
            out.push_str("</a>");
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_by_depth() {
        // fetch → [double, label] → join; a late `report` after join.
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2], vec![3]];
        let places = layout(&deps);
        assert_eq!(places.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 1, 2, 3]);
        assert_ne!(places[1], places[2]);
    }

    #[test]
    fn declared_in_any_order() {
        let deps = vec![vec![1], vec![]];
        assert_eq!(layout(&deps), [(1, 0), (0, 0)]);
    }

    #[test]
    fn survives_cycles_and_bad_indices() {
        let deps = vec![vec![1], vec![0], vec![7]];
        let places = layout(&deps);
        assert_eq!(places.len(), 3);
    }
}
