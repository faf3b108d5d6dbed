//! Throughput and queue depth over time, from counts the board samples in
//! memory, and the charts drawn from them.

use std::collections::VecDeque;
use std::fmt::Write as _;

use errand_runtime::{QueueCounts, Timestamp};

use crate::html::Esc;

/// Fine samples are at least this far apart (ms)...
const FINE_EVERY: i64 = 2_000;
/// ...and kept for an hour.
const FINE_KEEP: usize = 1_800;
/// Coarse samples are at least this far apart (ms)...
const COARSE_EVERY: i64 = 60_000;
/// ...and kept for a day.
const COARSE_KEEP: usize = 1_440;

/// Totals over every queue at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) at: i64,
    pub(crate) done: u64,
    pub(crate) dead: u64,
    pub(crate) waiting: u64,
    pub(crate) running: u64,
}

impl Sample {
    pub(crate) fn of(at: Timestamp, counts: &[QueueCounts]) -> Self {
        counts.iter().fold(Self { at: at.as_millis(), ..Self::default() }, |s, c| Self {
            at: s.at,
            done: s.done + c.done,
            dead: s.dead + c.dead,
            waiting: s.waiting + c.pending + c.retry,
            running: s.running + c.running,
        })
    }
}

/// The samples of one backend.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    fine: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
}

/// What a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    Minutes15,
    Hour,
    Day,
}

impl Range {
    pub(crate) const ALL: [Range; 3] = [Range::Minutes15, Range::Hour, Range::Day];

    pub(crate) fn parse(s: Option<&str>) -> Self {
        match s {
            Some("1h") => Range::Hour,
            Some("24h") => Range::Day,
            _ => Range::Minutes15,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Range::Minutes15 => "15m",
            Range::Hour => "1h",
            Range::Day => "24h",
        }
    }

    pub(crate) const fn label(self) -> &'static str {
        match self {
            Range::Minutes15 => "15 min",
            Range::Hour => "1 hour",
            Range::Day => "24 hours",
        }
    }

    const fn millis(self) -> i64 {
        match self {
            Range::Minutes15 => 15 * 60_000,
            Range::Hour => 60 * 60_000,
            Range::Day => 24 * 60 * 60_000,
        }
    }
}

impl Samples {
    /// Records `sample` unless the last one is too recent.
    pub(crate) fn record(&mut self, sample: Sample) {
        if self.fine.back().is_none_or(|last| sample.at - last.at >= FINE_EVERY) {
            if self.fine.len() == FINE_KEEP {
                self.fine.pop_front();
            }
            self.fine.push_back(sample);
        }
        if self.coarse.back().is_none_or(|last| sample.at - last.at >= COARSE_EVERY) {
            if self.coarse.len() == COARSE_KEEP {
                self.coarse.pop_front();
            }
            self.coarse.push_back(sample);
        }
    }

    /// The samples of `range`, oldest first, ending with the latest.
    fn window(&self, range: Range) -> Vec<Sample> {
        let ring = if range == Range::Day { &self.coarse } else { &self.fine };
        let mut out: Vec<Sample> = match ring.back() {
            Some(last) => ring.iter().filter(|s| last.at - s.at <= range.millis()).copied().collect(),
            None => Vec::new(),
        };
        // The coarse ring's last sample may be up to a minute old: end on the latest.
        if let (Some(latest), Some(last)) = (self.fine.back(), out.last())
            && latest.at > last.at
        {
            out.push(*latest);
        }
        out
    }

    /// Tasks finished per minute over the last minute (or the last samples'
    /// span, if shorter), if there are two samples.
    pub(crate) fn recent_rate(&self) -> Option<f64> {
        let last = self.fine.back()?;
        let first = self.fine.iter().rev().find(|s| last.at - s.at >= 60_000).or_else(|| self.fine.front())?;
        let dt = last.at - first.at;
        if dt <= 0 {
            return None;
        }
        let finished = (last.done + last.dead).saturating_sub(first.done + first.dead);
        Some(finished as f64 * 60_000.0 / dt as f64)
    }

    /// The two charts of `range`: throughput and queue depth.
    pub(crate) fn charts(&self, range: Range) -> String {
        let samples = self.window(range);
        if samples.len() < 2 {
            return r#"<div class="chart-empty">Collecting samples: the charts fill in while the board is open.</div>"#
                .to_owned();
        }
        let end = samples.last().map_or(0, |s| s.at);
        let first = samples.first().map_or(end, |s| s.at);
        // A board opened recently charts what it has (at least 10 s of it).
        let start = end - range.millis().min((end - first).max(10_000));
        let mut done = Vec::with_capacity(samples.len());
        let mut dead = Vec::with_capacity(samples.len());
        for pair in samples.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let minutes = (b.at - a.at) as f64 / 60_000.0;
            if minutes <= 0.0 {
                continue;
            }
            done.push((b.at, b.done.saturating_sub(a.done) as f64 / minutes));
            dead.push((b.at, b.dead.saturating_sub(a.dead) as f64 / minutes));
        }
        let waiting: Vec<(i64, f64)> = samples.iter().map(|s| (s.at, s.waiting as f64)).collect();
        let running: Vec<(i64, f64)> = samples.iter().map(|s| (s.at, s.running as f64)).collect();
        let mut out = String::new();
        out.push_str(r#"<div class="charts">"#);
        chart(
            &mut out,
            "Throughput",
            "tasks / min",
            (start, end),
            &[
                Series { name: "done", class: "c-done", points: &done },
                Series { name: "dead", class: "c-dead", points: &dead },
            ],
        );
        chart(
            &mut out,
            "Queue depth",
            "tasks",
            (start, end),
            &[
                Series { name: "waiting", class: "c-waiting", points: &waiting },
                Series { name: "running", class: "c-running", points: &running },
            ],
        );
        out.push_str("</div>");
        out
    }
}

struct Series<'a> {
    name: &'static str,
    class: &'static str,
    points: &'a [(i64, f64)],
}

const W: f64 = 560.0;
const H: f64 = 190.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 24.0;

/// Grid lines above zero.
const TICKS: u32 = 4;

/// A "nice" upper bound for an axis of [`TICKS`] steps, each step 1, 2, 2.5
/// or 5 times a power of ten (whole numbers from 1 up).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return f64::from(TICKS);
    }
    let raw = max / f64::from(TICKS);
    let magnitude = 10f64.powf(raw.log10().floor());
    let steps: &[f64] =
        if !(1.0..10.0).contains(&magnitude) { &[1.0, 2.0, 2.5, 5.0, 10.0] } else { &[1.0, 2.0, 5.0, 10.0] };
    let step = steps.iter().map(|m| m * magnitude).find(|v| *v >= raw).unwrap_or(10.0 * magnitude);
    step * f64::from(TICKS)
}

/// `30 s`, `15 min`, `24 h`.
fn short_span(millis: i64) -> String {
    let s = (millis / 1000).max(0);
    if s < 120 {
        format!("{s} s")
    } else if s < 2 * 3600 {
        format!("{} min", (s + 30) / 60)
    } else {
        format!("{} h", (s + 1800) / 3600)
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let k = v / 1000.0;
        if (k - k.round()).abs() < 1e-9 { format!("{k:.0}k") } else { format!("{k:.1}k") }
    } else if v >= 10.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn chart(out: &mut String, title: &str, unit: &str, (start, end): (i64, i64), series: &[Series<'_>]) {
    let max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let top = nice_max(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - start).max(0) as f64 / (end - start).max(1) as f64 * plot_w;
    let y = |v: f64| TOP + plot_h - (v / top).min(1.0) * plot_h;
    let _ = write!(out, r#"<figure class="chart"><figcaption><span class="chart-title">{}</span>"#, Esc(title));
    for s in series {
        let last = s.points.last().map_or(0.0, |p| p.1);
        let _ =
            write!(out, r#"<span class="legend {}"><i></i>{} <b>{}</b></span>"#, s.class, Esc(s.name), fmt_value(last));
    }
    let _ = write!(out, r#"</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{} over time">"#, Esc(title));
    for i in 0..=TICKS {
        let v = top * f64::from(i) / f64::from(TICKS);
        let gy = y(v);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{gy:.1}" y2="{gy:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            gy + 4.0,
            fmt_value(v)
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="{LEFT}" y="{}">−{}</text><text class="axis" x="{}" y="{}" text-anchor="end">now</text><text class="axis unit" x="{}" y="{}" text-anchor="middle">{}</text>"#,
        H - 6.0,
        short_span(end - start),
        W - RIGHT,
        H - 6.0,
        LEFT + plot_w / 2.0,
        H - 6.0,
        Esc(unit)
    );
    for s in series {
        let visible: Vec<&(i64, f64)> = s.points.iter().filter(|p| p.0 >= start).collect();
        if visible.is_empty() {
            continue;
        }
        let mut line = String::new();
        for (i, (t, v)) in visible.iter().enumerate() {
            let _ = write!(line, "{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, x(*t), y(*v));
        }
        let (first, last) = (visible[0].0, visible[visible.len() - 1].0);
        let _ = write!(
            out,
            r#"<path class="area {c}" d="{line} L{:.1},{:.1} L{:.1},{:.1} Z"/><path class="line {c}" d="{line}"/>"#,
            x(last),
            TOP + plot_h,
            x(first),
            TOP + plot_h,
            c = s.class
        );
    }
    out.push_str("</svg></figure>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, done: u64) -> Sample {
        Sample { at, done, ..Sample::default() }
    }

    #[test]
    fn keeps_samples_apart_and_bounded() {
        let mut s = Samples::default();
        for i in 0..5_000 {
            s.record(sample(i * 1_000, i as u64));
        }
        assert_eq!(s.fine.len(), FINE_KEEP);
        assert!(s.fine.iter().zip(s.fine.iter().skip(1)).all(|(a, b)| b.at - a.at >= FINE_EVERY));
        assert!(s.coarse.len() <= COARSE_KEEP);
    }

    #[test]
    fn rate_per_minute() {
        let mut s = Samples::default();
        s.record(sample(0, 0));
        s.record(sample(30_000, 10));
        let rate = s.recent_rate().unwrap_or_default();
        assert!((rate - 20.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn charts_need_two_samples() {
        let mut s = Samples::default();
        s.record(sample(0, 0));
        assert!(s.charts(Range::Minutes15).contains("Collecting"));
        s.record(sample(10_000, 5));
        let svg = s.charts(Range::Minutes15);
        assert!(svg.contains("<svg"));
        assert!(svg.contains("Throughput"));
    }

    #[test]
    fn nice_axes() {
        for (max, top) in [(0.0, 4.0), (3.2, 4.0), (5.0, 8.0), (120.0, 200.0), (540.0, 800.0), (0.3, 0.4)] {
            assert!((nice_max(max) - top).abs() < 1e-9, "{max} → {} not {top}", nice_max(max));
        }
        assert_eq!(short_span(900_000), "15 min");
        assert_eq!(short_span(86_400_000), "24 h");
    }
}
