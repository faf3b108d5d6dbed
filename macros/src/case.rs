//! Identifier casing and "did you mean" suggestions.

/// `send_email` → `SendEmail`, `fetch_v2_user` → `FetchV2User`, `_private` → `Private`.
pub(crate) fn pascal_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper_next = true;
    for c in snake.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The candidate closest to `input` by edit distance, if it is close enough
/// to be what the user meant.
pub(crate) fn nearest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    let close = candidates
        .iter()
        .map(|c| (edit_distance(&input, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(input.len()) / 2).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    // An abbreviation (`prio`) is as good a hint as a typo.
    close.or_else(|| candidates.iter().copied().find(|c| input.len() >= 3 && c.starts_with(input.as_str())))
}

/// Levenshtein distance between two strings, counted in chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// "`a`, `b` or `c`" (with `conjunction = "or"`).
pub(crate) fn list(items: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, init)) => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_of_snake_names() {
        assert_eq!(pascal_case("send_email"), "SendEmail");
        assert_eq!(pascal_case("fetch_v2_user"), "FetchV2User");
        assert_eq!(pascal_case("_private"), "Private");
        assert_eq!(pascal_case("a__b"), "AB");
        assert_eq!(pascal_case("already"), "Already");
    }

    #[test]
    fn lists() {
        assert_eq!(list(&[], "or"), "");
        assert_eq!(list(&["a"], "or"), "`a`");
        assert_eq!(list(&["a", "b"], "and"), "`a` and `b`");
        assert_eq!(list(&["a", "b", "c"], "or"), "`a`, `b` or `c`");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("retry", "retries"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("queue", "queue"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_are_close_or_absent() {
        let keys = ["name", "queue", "retries", "backoff", "timeout", "priority", "unique", "unique_for"];
        assert_eq!(nearest("retry", &keys), Some("retries"));
        assert_eq!(nearest("queu", &keys), Some("queue"));
        assert_eq!(nearest("Timeout", &keys), Some("timeout"));
        assert_eq!(nearest("prio", &keys), Some("priority"));
        assert_eq!(nearest("xyz", &keys), None);
        assert_eq!(nearest("cron", &["name", "queue", "crate"]), None);
        assert_eq!(nearest("uniq_for", &keys), Some("unique_for"));
    }
}
