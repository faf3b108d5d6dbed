//! Which servers this backend runs on: claims need `SELECT … FOR UPDATE
//! SKIP LOCKED` (MySQL 8.0, MariaDB 10.6) and batches need `JSON_TABLE`
//! (MySQL 8.0.4, MariaDB 10.6). An older server is refused when the backend
//! connects or migrates, with a message naming its version.

/// The kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// MariaDB: `INSERT … RETURNING` gives a bulk enqueue its ids.
    MariaDb,
    /// MySQL (or a fork that reports its version the same way).
    MySql,
}

/// A server's version, from `SELECT VERSION()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerVersion {
    pub(crate) flavor: Flavor,
    pub(crate) major: u32,
    pub(crate) minor: u32,
    /// What the server said, for messages.
    pub(crate) text: String,
}

impl ServerVersion {
    /// Parses `VERSION()`: `8.0.36`, `8.4.0-log`, `10.11.6-MariaDB-0+deb12u1`,
    /// or the `5.5.5-10.6.12-MariaDB` form some MariaDB releases report.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mariadb = text.to_ascii_lowercase().contains("mariadb");
        let numbers = match text.strip_prefix("5.5.5-") {
            Some(rest) if mariadb => rest,
            _ => text,
        };
        let mut parts = numbers.split(|c: char| !c.is_ascii_digit());
        let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
        match (number(), number()) {
            (Some(major), Some(minor)) => Ok(Self {
                flavor: if mariadb { Flavor::MariaDb } else { Flavor::MySql },
                major,
                minor,
                text: text.to_owned(),
            }),
            _ => Err(format!("cannot read the server version `{text}`")),
        }
    }

    /// Whether this backend runs on it; why not otherwise.
    pub(crate) fn check(&self) -> Result<(), String> {
        let (needed, name) = match self.flavor {
            Flavor::MariaDb => ((10, 6), "MariaDB"),
            Flavor::MySql => ((8, 0), "MySQL"),
        };
        if (self.major, self.minor) >= needed {
            return Ok(());
        }
        Err(format!(
            "the server is {name} {}, which lacks `SELECT … FOR UPDATE SKIP LOCKED` (and `JSON_TABLE`): \
             errand's MySQL backend needs MySQL 8.0 or later, or MariaDB 10.6 or later",
            self.text
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), String> {
        ServerVersion::parse(text)?.check()
    }

    #[test]
    fn servers_without_skip_locked_are_refused_by_version() {
        for old in
            ["10.5.23-MariaDB", "10.5.9-MariaDB-1:10.5.9+maria~focal", "5.7.44", "5.7.44-log", "5.5.5-10.4.32-MariaDB"]
        {
            let error = check(old).err().unwrap_or_default();
            assert!(error.contains(old) && error.contains("SKIP LOCKED"), "{old}: {error}");
        }
        for new in ["10.11.19-MariaDB-0+deb12u1", "10.6.12-MariaDB", "8.0.36", "8.4.0-log", "9.1.0", "11.4.2-MariaDB"] {
            assert_eq!(check(new), Ok(()), "{new}");
        }
        assert_eq!(ServerVersion::parse("5.5.5-10.11.2-MariaDB").map(|v| (v.major, v.minor)), Ok((10, 11)));
        assert_eq!(ServerVersion::parse("8.0.36").map(|v| v.flavor), Ok(Flavor::MySql));
        assert!(ServerVersion::parse("garbage").is_err());
    }
}
