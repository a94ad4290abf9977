//! The directories the check grants this handler (`grants.dirs`), by the
//! guest paths the handler sees them at. A path outside all of them does
//! not exist for the handler; these functions let it say so in words
//! rather than report a bare "not found".

/// The guest paths of the directories granted to this run, in the order
/// the host granted them.
pub fn granted() -> Vec<String> {
    wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// Whether the absolute guest path `path` lies in the directory `root`:
/// `/data/x` and `/data` are in `/data` (and in `/`), `/data2` is not.
pub fn within(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return path.starts_with('/');
    }
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `None` when `path` lies in a granted directory; otherwise why the
/// handler cannot reach it, naming what is granted:
/// `/etc/x is not in a directory granted to this check (grants.dirs: /data, /logs)`.
pub fn refusal(path: &str) -> Option<String> {
    refusal_among(path, &granted())
}

/// [`refusal`] against a given list of granted directories.
pub fn refusal_among(path: &str, granted: &[String]) -> Option<String> {
    if granted.iter().any(|root| within(path, root)) {
        return None;
    }
    let listed = if granted.is_empty() {
        "none".to_string()
    } else {
        granted.join(", ")
    };
    Some(format!(
        "{path} is not in a directory granted to this check (grants.dirs: {listed})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_within_its_directory_and_not_a_sibling_with_a_longer_name() {
        assert!(within("/backups", "/backups"));
        assert!(within("/backups/daily", "/backups/"));
        assert!(!within("/backups2", "/backups"));
        assert!(!within("/etc", "/backups"));
        assert!(within("/anything", "/"));
    }

    #[test]
    fn a_refusal_names_the_path_and_what_is_granted() {
        let granted = vec!["/data".to_string(), "/logs".to_string()];
        assert_eq!(refusal_among("/data/x", &granted), None);
        assert_eq!(
            refusal_among("/etc/x", &granted).as_deref(),
            Some("/etc/x is not in a directory granted to this check (grants.dirs: /data, /logs)")
        );
        assert_eq!(
            refusal_among("/etc/x", &[]).as_deref(),
            Some("/etc/x is not in a directory granted to this check (grants.dirs: none)")
        );
    }
}
