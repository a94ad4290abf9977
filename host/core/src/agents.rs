//! One host for many agents (`run --agents DIR`, a repeated `--config`):
//! which agent each file is, and what a rescan of the files means for the
//! agents being served ([`Roster::plan`]). The host lists and reads the
//! files and starts and stops the agents; what to do is decided here.

use std::collections::BTreeMap;

/// The longest agent name served from an agents directory: it becomes a
/// queue name (`agent.{name}.inbox`, at most 255 bytes) and a file name.
pub const MAX_AGENT_NAME: usize = 100;

/// Whether `name` can name an agent served beside others: its name is part
/// of its queue's and its state file's names, so letters, digits, `.`, `_`
/// and `-` only, not starting with `.`, at most [`MAX_AGENT_NAME`] bytes.
/// (The single-agent form keeps taking whatever name it is given.)
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("expected an agent name, found \"\"".into());
    }
    if name.len() > MAX_AGENT_NAME {
        return Err(format!(
            "expected an agent name of at most {MAX_AGENT_NAME} bytes, found {}",
            name.len()
        ));
    }
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "expected an agent name of letters, digits, `.`, `_` and `-` (not starting with `.`), found {name:?}"
        ));
    }
    Ok(())
}

/// What makes an agent the one it is: a change to either restarts it (new
/// queue, state file or handlers); any other change to its file is a
/// config reload, applied in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The file's `agent`.
    pub agent: String,
    /// The file's `handlersDir`, as written.
    pub handlers_dir: Option<String>,
}

/// One agent file as a rescan found it.
#[derive(Debug, Clone)]
pub struct Scanned<K> {
    /// The file (its path, for the host).
    pub key: K,
    /// Who it names, or why it names no one (the reason names the file's field).
    pub identity: Result<Identity, String>,
    /// A digest of its bytes: an unchanged file is left alone.
    pub digest: u64,
}

/// What a rescan asks of the host, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<K> {
    /// Serve the agent this file names.
    Start {
        /// The file.
        key: K,
        /// The agent.
        identity: Identity,
    },
    /// Stop serving the file's agent (its file is gone, or names another
    /// agent now: a [`Action::Start`] for the same file follows).
    Stop {
        /// The file.
        key: K,
        /// The agent being stopped.
        agent: String,
    },
    /// The file changed but still names the same agent: read it again as
    /// a config reload (which refuses a broken file and keeps the last good
    /// config, as for a single agent).
    Reload {
        /// The file.
        key: K,
    },
    /// The file names no agent that can be served; nothing else changes.
    Refuse {
        /// The file.
        key: K,
        /// Why, naming the field.
        reason: String,
    },
}

/// The agents being served, by file, and the files refused since they last
/// changed (so that a broken file is reported once, not at every rescan).
#[derive(Debug, Clone)]
pub struct Roster<K> {
    served: BTreeMap<K, (Identity, u64)>,
    refused: BTreeMap<K, u64>,
    /// Whether a file that disappears stops its agent (`--agents DIR`) or
    /// leaves it on its last good config until the file is back (a
    /// `--config` file, as in the single-agent form).
    gone_stops: bool,
}

impl<K: Ord + Clone> Roster<K> {
    /// An empty roster; `gone_stops` as in [`Roster`].
    pub fn new(gone_stops: bool) -> Roster<K> {
        Roster {
            served: BTreeMap::new(),
            refused: BTreeMap::new(),
            gone_stops,
        }
    }

    /// The agents served now, by file.
    pub fn served(&self) -> impl Iterator<Item = (&K, &Identity)> {
        self.served.iter().map(|(k, (id, _))| (k, id))
    }

    /// The file serving `agent`, if one does: after a first [`Roster::plan`]
    /// of a fresh roster, the first file (in the order given) naming it.
    /// `check --agents` asks this of every file to say which one `run`
    /// would serve, by the rule `run` applies.
    pub fn serving(&self, agent: &str) -> Option<&K> {
        self.served
            .iter()
            .find(|(_, (id, _))| id.agent == agent)
            .map(|(k, _)| k)
    }

    /// The host could not start the agent of `key` (its state file is
    /// unreadable, say): it is not served, and the same bytes are not tried
    /// again until the file changes.
    pub fn start_failed(&mut self, key: &K) {
        if let Some((_, digest)) = self.served.remove(key) {
            self.refused.insert(key.clone(), digest);
        }
    }

    /// Compares a rescan (every agent file there is now) with what is
    /// served, updates the roster as if every action succeeds, and says
    /// what to do. Files already served keep their agent's name against a
    /// new file claiming it; new files are taken in the order given.
    pub fn plan(&mut self, scanned: Vec<Scanned<K>>) -> Vec<Action<K>> {
        let mut actions = Vec::new();
        let present: std::collections::BTreeSet<K> =
            scanned.iter().map(|s| s.key.clone()).collect();
        let gone: Vec<K> = self
            .served
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if self.gone_stops {
                if let Some((identity, _)) = self.served.remove(&key) {
                    actions.push(Action::Stop {
                        key,
                        agent: identity.agent,
                    });
                }
            } else if let Some(entry) = self.served.get_mut(&key) {
                // Reported once by the reload (config missing); again when it is back.
                if entry.1 != 0 {
                    entry.1 = 0;
                    actions.push(Action::Reload { key });
                }
            }
        }
        if actions.iter().any(|a| matches!(a, Action::Stop { .. })) {
            // A name may be free now: files refused for claiming it are read again.
            self.refused.clear();
        } else {
            self.refused.retain(|k, _| present.contains(k));
        }
        // Files already served first: they keep their names.
        let (mut known, new): (Vec<_>, Vec<_>) = scanned
            .into_iter()
            .partition(|s| self.served.contains_key(&s.key));
        known.extend(new);
        for file in known {
            let Scanned {
                key,
                identity,
                digest,
            } = file;
            let served = self.served.get(&key).cloned();
            if served.as_ref().is_some_and(|(_, d)| *d == digest)
                || self.refused.get(&key) == Some(&digest)
            {
                continue;
            }
            match (identity, served) {
                // Same agent, changed file (or broken now): a reload.
                (Ok(identity), Some((current, _))) if identity == current => {
                    self.served.insert(key.clone(), (identity, digest));
                    actions.push(Action::Reload { key });
                }
                (Err(_), Some((current, _))) => {
                    self.served.insert(key.clone(), (current, digest));
                    actions.push(Action::Reload { key });
                }
                (Ok(identity), served) => {
                    if self.is_served_elsewhere(&identity.agent, &key) {
                        self.refused.insert(key.clone(), digest);
                        actions.push(Action::Refuse {
                            key,
                            reason: format!(
                                "agent: {:?} is already served from another file",
                                identity.agent
                            ),
                        });
                        continue;
                    }
                    if let Some((current, _)) = served {
                        actions.push(Action::Stop {
                            key: key.clone(),
                            agent: current.agent,
                        });
                    }
                    self.refused.remove(&key);
                    self.served.insert(key.clone(), (identity.clone(), digest));
                    actions.push(Action::Start { key, identity });
                }
                (Err(reason), None) => {
                    self.refused.insert(key.clone(), digest);
                    actions.push(Action::Refuse { key, reason });
                }
            }
        }
        actions
    }

    /// Whether a file other than `key` serves an agent named `agent`.
    fn is_served_elsewhere(&self, agent: &str, key: &K) -> bool {
        self.served
            .iter()
            .any(|(k, (id, _))| k != key && id.agent == agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(agent: &str) -> Identity {
        Identity {
            agent: agent.into(),
            handlers_dir: None,
        }
    }

    fn ok(key: &'static str, agent: &str, digest: u64) -> Scanned<&'static str> {
        Scanned {
            key,
            identity: Ok(id(agent)),
            digest,
        }
    }

    fn broken(key: &'static str, digest: u64) -> Scanned<&'static str> {
        Scanned {
            key,
            identity: Err("agent: required".into()),
            digest,
        }
    }

    #[test]
    fn agent_names_become_queue_and_file_names() {
        assert!(check_name("cack").is_ok());
        assert!(check_name("agent-7.eu_west").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ä", "a*", "a#"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"a".repeat(MAX_AGENT_NAME)).is_ok());
        assert!(check_name(&"a".repeat(MAX_AGENT_NAME + 1)).is_err());
    }

    #[test]
    fn new_files_start_and_unchanged_files_are_left_alone() {
        let mut roster = Roster::new(true);
        let actions = roster.plan(vec![ok("a.json", "a", 1), ok("b.json", "b", 2)]);
        assert_eq!(
            actions,
            vec![
                Action::Start {
                    key: "a.json",
                    identity: id("a")
                },
                Action::Start {
                    key: "b.json",
                    identity: id("b")
                },
            ]
        );
        assert!(
            roster
                .plan(vec![ok("a.json", "a", 1), ok("b.json", "b", 2)])
                .is_empty()
        );
    }

    #[test]
    fn a_changed_file_of_the_same_agent_is_a_reload_even_when_broken() {
        let mut roster = Roster::new(true);
        roster.plan(vec![ok("a.json", "a", 1)]);
        assert_eq!(
            roster.plan(vec![ok("a.json", "a", 2)]),
            vec![Action::Reload { key: "a.json" }]
        );
        assert_eq!(
            roster.plan(vec![broken("a.json", 3)]),
            vec![Action::Reload { key: "a.json" }]
        );
        // Still served under its last good identity; fixed again: a reload.
        assert_eq!(roster.served().count(), 1);
        assert_eq!(
            roster.plan(vec![ok("a.json", "a", 1)]),
            vec![Action::Reload { key: "a.json" }]
        );
    }

    #[test]
    fn a_file_naming_another_agent_restarts_it_under_the_new_name() {
        let mut roster = Roster::new(true);
        roster.plan(vec![ok("a.json", "a", 1)]);
        assert_eq!(
            roster.plan(vec![ok("a.json", "renamed", 2)]),
            vec![
                Action::Stop {
                    key: "a.json",
                    agent: "a".into()
                },
                Action::Start {
                    key: "a.json",
                    identity: id("renamed")
                },
            ]
        );
    }

    #[test]
    fn a_deleted_file_stops_its_agent_in_a_directory_only() {
        let mut dir = Roster::new(true);
        dir.plan(vec![ok("a.json", "a", 1), ok("b.json", "b", 2)]);
        assert_eq!(
            dir.plan(vec![ok("b.json", "b", 2)]),
            vec![Action::Stop {
                key: "a.json",
                agent: "a".into()
            }]
        );
        let mut files = Roster::new(false);
        files.plan(vec![ok("a.json", "a", 1)]);
        assert_eq!(files.plan(vec![]), vec![Action::Reload { key: "a.json" }]);
        assert!(files.plan(vec![]).is_empty(), "reported once");
        assert_eq!(
            files.plan(vec![ok("a.json", "a", 1)]),
            vec![Action::Reload { key: "a.json" }],
            "back: read again"
        );
    }

    #[test]
    fn a_broken_new_file_is_refused_once_until_it_changes() {
        let mut roster = Roster::new(true);
        assert_eq!(
            roster.plan(vec![broken("x.json", 5)]),
            vec![Action::Refuse {
                key: "x.json",
                reason: "agent: required".into()
            }]
        );
        assert!(roster.plan(vec![broken("x.json", 5)]).is_empty());
        assert_eq!(
            roster.plan(vec![ok("x.json", "x", 6)]),
            vec![Action::Start {
                key: "x.json",
                identity: id("x")
            }]
        );
    }

    #[test]
    fn a_second_file_claiming_a_served_name_is_refused_and_the_first_keeps_it() {
        let mut roster = Roster::new(true);
        roster.plan(vec![ok("b.json", "same", 1)]);
        let actions = roster.plan(vec![ok("a.json", "same", 2), ok("b.json", "same", 1)]);
        assert!(
            matches!(&actions[..], [Action::Refuse { key: "a.json", reason }] if reason.contains("already served")),
            "{actions:?}"
        );
        // The first goes away: the second file, unchanged, takes the name.
        let actions = roster.plan(vec![ok("a.json", "same", 2)]);
        assert_eq!(
            actions,
            vec![
                Action::Stop {
                    key: "b.json",
                    agent: "same".into()
                },
                Action::Start {
                    key: "a.json",
                    identity: id("same")
                },
            ]
        );
    }

    #[test]
    fn of_new_files_naming_one_agent_the_first_given_serves_it() {
        let mut roster = Roster::new(true);
        roster.plan(vec![
            ok("a.json", "a", 1),
            ok("d.json", "b", 2),
            broken("c.json", 3),
            ok("b.json", "b", 4),
        ]);
        assert_eq!(roster.serving("b"), Some(&"d.json"));
        assert_eq!(roster.serving("a"), Some(&"a.json"));
        assert_eq!(roster.serving("nobody"), None);
    }

    #[test]
    fn a_start_that_failed_is_not_retried_until_the_file_changes() {
        let mut roster = Roster::new(true);
        roster.plan(vec![ok("a.json", "a", 1)]);
        roster.start_failed(&"a.json");
        assert_eq!(roster.served().count(), 0);
        assert!(roster.plan(vec![ok("a.json", "a", 1)]).is_empty());
        assert_eq!(roster.plan(vec![ok("a.json", "a", 2)]).len(), 1);
    }
}
